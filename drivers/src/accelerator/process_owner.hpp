#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

// Who runs on an accelerator: the owner of a process a vendor's library reports, from procfs,
// and the series every accelerator driver publishes for it. The policy engine reads
// gridnode_gpu_process_memory_used_bytes{gpu,UUID,pid} to decide who may use an accelerator
// (agent/src/policy_engine.cpp, take_processes), whatever the vendor.
namespace gridnode::drivers::accelerators {

// The real uid of a process from /proc/<pid>/status ("Uid:\t1000\t1000\t1000\t1000").
std::optional<std::uint32_t> parse_status_uid(std::string_view status);

// The cgroup a process belongs to, from /proc/<pid>/cgroup: the unified (v2) hierarchy's path
// ("0::/system.slice/train.service"); on a v1-only host, the memory controller's, else the
// first line's. Empty when the text has no usable line.
std::string parse_cgroup_path(std::string_view cgroup);

struct ProcessOwner {
  std::string uid, cgroup;  // empty: the process is gone, or in a pid namespace we cannot see
};
ProcessOwner process_owner(const platform::Roots& roots, std::uint32_t pid);

// gridnode_gpu_process_memory_used_bytes: memory used by a running compute process.
Family process_family();

// The process series of one driver: its catalog is the devices' (`base`) plus one series per
// running process, rebuilt only when that set changed, as jobs come and go.
class ProcessSeries {
 public:
  // Forgets the set (the base catalog changed).
  void reset() { keys_.clear(); }
  // `labels`: one per running process, in order (taken); `memory`: its bytes, or `absent` for
  // none. Updates `catalog` (and out.catalog) when the set changed; pushes the readings.
  void publish(std::vector<Labels>& labels, const std::vector<std::uint64_t>& memory,
               std::uint64_t absent, const std::shared_ptr<const Catalog>& base,
               std::uint32_t family, std::shared_ptr<const Catalog>& catalog, Sweep& out);

 private:
  std::vector<Labels> keys_;
};

}  // namespace gridnode::drivers::accelerators
