#pragma once

#include <memory>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter's mdadm collector, parsed from <procfs>/mdstat as prometheus/procfs 0.8's
// MDStat() parses it. For every md device, with label {device} ("md0"):
//   node_md_state{device,state}  1 for the device's state, 0 for the others, for each of
//                                active, inactive, recovering, resync, check
//   node_md_disks{device,state}  active / failed ("(F)") / spare ("(S)") member disks
//   node_md_disks_required       the N of "[N/M]" (raid0, linear: the members)
//   node_md_blocks               the size in 1 KiB blocks
//   node_md_blocks_synced        blocks in sync: the size, or the done part of a running
//                                recovery / resync / check (0 when it is PENDING or DELAYED)
// A degraded array is node_md_disks{state="active"} < node_md_disks_required. The file is kept
// open and read whole each sweep; a device whose lines do not parse is skipped and counted
// (node_exporter 1.5.0 fails the whole collector then), the others are still reported.
struct MdadmOptions {
  platform::Roots roots;
};

// Never fails; the first sweep() says whether <procfs>/mdstat exists (no_such_file_or_directory
// when it does not: no md driver loaded).
std::unique_ptr<Driver> make_mdadm_driver(MdadmOptions options);

}  // namespace gridnode::drivers
