#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter 1.5.0's pressure collector: the kernel's pressure stall information (PSI),
// <procfs>/pressure/{cpu,io,memory}, each line's `total=` in microseconds, scale {1,-6} -> s:
//   node_pressure_cpu_waiting_seconds_total      cpu "some"
//   node_pressure_io_waiting_seconds_total       io "some"
//   node_pressure_io_stalled_seconds_total       io "full"
//   node_pressure_memory_waiting_seconds_total   memory "some"
//   node_pressure_memory_stalled_seconds_total   memory "full"
// The "full" line that kernels since 5.13 add to cpu is not exported, as 1.5.0 does not (the
// averages are not exported either: rates of the totals give them exactly). A resource whose
// file is absent is left out; a file that does not parse is skipped and counted.
struct PressureOptions {
  platform::Roots roots;
  bool keep_files_open = true;  // as ThermalOptions::keep_files_open
};

// Never fails; the first sweep() says no_such_file_or_directory when <procfs>/pressure is
// absent (a kernel before 4.20 or without CONFIG_PSI), or when PSI is disabled (psi=0, or
// CONFIG_PSI_DEFAULT_DISABLED without psi=1: the files answer EOPNOTSUPP), saying which.
std::unique_ptr<Driver> make_pressure_driver(PressureOptions options);

}  // namespace gridnode::drivers
