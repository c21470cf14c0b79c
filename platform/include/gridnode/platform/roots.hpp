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
  // Where the host's root file system is seen (node_exporter's --path.rootfs): the filesystem
  // driver statfs()es <rootfs>/<mount point> and strips this prefix from the mount points it
  // reads, so an agent in a container with the host's / under /host reports the host's mounts.
  std::string rootfs = "/";

  // sys("class/hwmon") == "/sys/class/hwmon"; an empty `rel` gives the root itself.
  std::string sys(std::string_view rel = {}) const { return join(sysfs, rel); }
  std::string proc(std::string_view rel = {}) const { return join(procfs, rel); }
  std::string root(std::string_view rel = {}) const { return join(rootfs, rel); }

  static std::string join(std::string_view base, std::string_view rel);
};

}  // namespace gridnode::platform
