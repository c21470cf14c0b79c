#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter 1.5.0's cpufreq collector, read under <sysfs>/devices/system/cpu/cpu[0-9]*/
// cpufreq (kHz, scale {1000,0} -> Hz), one series per CPU, labelled {cpu="N"}:
//   node_cpu_frequency_hertz               cpuinfo_cur_freq (root-only: 0400 on most drivers)
//   node_cpu_frequency_min_hertz           cpuinfo_min_freq
//   node_cpu_frequency_max_hertz           cpuinfo_max_freq
//   node_cpu_scaling_frequency_hertz       scaling_cur_freq
//   node_cpu_scaling_frequency_min_hertz   scaling_min_freq
//   node_cpu_scaling_frequency_max_hertz   scaling_max_freq
// and, as node_exporter 1.6 added it (1.5 has no governor metric):
//   node_cpu_scaling_governor{cpu,governor}  1 for scaling_governor, 0 for each other name in
//                                            scaling_available_governors
// A file that is absent or refused (EACCES) when the CPU is discovered is left out, as
// node_exporter leaves it out; a CPU without cpufreq (offline, or no cpufreq driver) has no
// series. A value that does not parse is skipped and counted (node_exporter fails the whole
// collector). A governor change is seen at once; a change of the available set at the next
// rediscovery.
struct CpufreqOptions {
  platform::Roots roots;
  bool keep_files_open = true;  // as ThermalOptions::keep_files_open
};

// Never fails; the first sweep() says no_such_file_or_directory when
// <sysfs>/devices/system/cpu is absent.
std::unique_ptr<Driver> make_cpufreq_driver(CpufreqOptions options);

}  // namespace gridnode::drivers
