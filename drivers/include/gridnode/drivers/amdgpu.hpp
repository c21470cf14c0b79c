#pragma once

#include <memory>
#include <string>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// AMD GPUs driven by amdgpu, read from <sysfs>/class/drm/card<N>/device, under the names of
// AMD's device-metrics-exporter (labels gpu_id, card_model, serial_number, hostname):
//   gpu_gfx_activity                 gpu_busy_percent, %
//   gpu_total_vram / gpu_used_vram / gpu_free_vram   mem_info_vram_*, MB (bytes / 2^20, as
//                                    amd-smi reports them)
//   gpu_power_usage                  hwmon power1_average (else power1_input), µW -> W exact
//   gpu_edge_temperature / gpu_junction_temperature / gpu_memory_temperature
//                                    hwmon temp*_input labelled edge / junction / mem, m°C
//   gpu_clock{clock_type="GPU_CLOCK_TYPE_SYSTEM"|"GPU_CLOCK_TYPE_MEMORY"}
//                                    the current ('*') level of pp_dpm_sclk / pp_dpm_mclk, MHz
// and the node summary gridnode_accelerators / _busy / _idle{vendor="amd"} and
// gridnode_accelerator_memory_free_bytes{vendor="amd"} (busy: gpu_busy_percent above 0).
// Cards bound to another driver (i915, nouveau, nvidia's DRM) are not amdgpu's and are skipped.
struct AmdgpuOptions {
  platform::Roots roots;
  std::string hostname;  // the hostname label; empty: gethostname()
};

// Never fails; the first sweep() says whether any amdgpu card exists
// (no_such_file_or_directory when none does).
std::unique_ptr<Driver> make_amdgpu_driver(AmdgpuOptions options);

}  // namespace gridnode::drivers
