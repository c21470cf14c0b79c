#pragma once

#include <string>
#include <string_view>

namespace gridnode::platform {

// Where the kernel's pseudo file systems are mounted. Every driver resolves its paths through
// one of these, never through a "/sys" literal, so a whole agent runs on a fixture tree and
// tests run in parallel (node_exporter's --path.sysfs / --path.procfs).
struct Roots {
  std::string sysfs = "/sys";
  std::string procfs = "/proc";

  // sys("class/hwmon") == "/sys/class/hwmon"; an empty `rel` gives the root itself.
  std::string sys(std::string_view rel = {}) const { return join(sysfs, rel); }
  std::string proc(std::string_view rel = {}) const { return join(procfs, rel); }

  static std::string join(std::string_view base, std::string_view rel);
};

}  // namespace gridnode::platform
