#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gridnode/drivers/driver.hpp"

// What the accelerator drivers (nvml, amdgpu) share: the node summary a scheduler matches supply
// to demand with, spelled once here, and the host name their labels carry.
namespace gridnode::drivers::accelerators {

struct Summary {
  std::int64_t total = 0;  // every accelerator the driver knows, answering or not
  std::int64_t busy = 0;   // answering and in use (a compute process, or utilisation above 0)
  std::int64_t idle = 0;   // answering and not in use
  std::uint64_t free_memory_bytes = 0;  // on the answering ones
  // Sum over the answering ones of (power limit - power draw), where both are known: how much
  // more power the node's accelerators may draw. The capacity view ranks nodes by it.
  std::int64_t power_headroom_mw = 0;
};

// Adds gridnode_accelerators, gridnode_accelerators_busy, gridnode_accelerators_idle,
// gridnode_accelerator_memory_free_bytes and gridnode_accelerator_power_headroom_watts, each
// {vendor=`vendor`}, in that order; returns the first one's series index. Accelerators neither
// busy nor idle are not answering (lost, hung): total - busy - idle. The collector's capacity
// view reads these names (collector/src/capacity.hpp).
std::uint32_t add_summary(Catalog& catalog, std::string_view vendor);

// The five readings for the series add_summary() returned.
void push_summary(Sweep& out, std::uint32_t first, const Summary& summary);

// gethostname(), or "" (dcgm-exporter's Hostname, AMD's exporter's hostname label).
std::string host_name();

}  // namespace gridnode::drivers::accelerators
