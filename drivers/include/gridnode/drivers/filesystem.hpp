#pragma once

#include <sys/vfs.h>

#include <chrono>
#include <memory>
#include <string>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter 1.5's filesystem collector (collector/filesystem_{common,linux}.go): the mounts
// of <procfs>/1/mounts (<procfs>/mounts where 1/ is hidden, hidepid), statfs(2) of
// <rootfs>/<mount point>, labels {device, fstype, mountpoint}:
//   node_filesystem_size_bytes     f_blocks * f_bsize      "Filesystem size in bytes."
//   node_filesystem_free_bytes     f_bfree * f_bsize       "Filesystem free space in bytes."
//   node_filesystem_avail_bytes    f_bavail * f_bsize      "Filesystem space available to
//                                                           non-root users in bytes."
//   node_filesystem_files          f_files                 "Filesystem total file nodes."
//   node_filesystem_files_free     f_ffree                 "Filesystem total free file nodes."
//   node_filesystem_readonly       1 when the mount options hold "ro"
//   node_filesystem_device_error   1 when statfs failed or is stalled; the other six are then
//                                  absent for that mount, as in node_exporter.
// Mount points and fs types matching the exclude regexes (node_exporter's defaults below;
// ECMAScript syntax, searched unanchored as Go's MatchString does) are not reported. A mount
// listed twice with the same labels is reported once.
//
// statfs of a dead NFS mount blocks in the kernel. Each call runs on a worker thread and is
// waited for at most `mount_timeout`; a call past it leaves its worker with the mount (which is
// then "stalled": device_error 1, not statted again until that call has returned) and the
// sweep goes on with a fresh worker. At most kMaxStalledMounts workers are left hanging; past
// that a mount that needs a worker is reported device_error 1 without a call. A sweep makes no
// new call after 2 × mount_timeout (several mounts of one dead server hanging at once): the
// mounts it did not reach have no samples this sweep (counted in Sweep::errors) and are the
// first the next sweep calls, so a sweep takes at most about 3 × mount_timeout.
struct FilesystemOptions {
  platform::Roots roots;
  std::string mount_points_exclude =
      "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
  std::string fs_types_exclude =
      "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
      "iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|"
      "sysfs|tracefs)$";
  // node_exporter's hidden --collector.filesystem.mount-timeout is 5 s, but it waits for the
  // call in the scrape anyway; ours bounds the sweep, which the sampler gives at most half of
  // its sweep timeout (5 s by default).
  std::chrono::nanoseconds mount_timeout = std::chrono::seconds(1);
  // The statfs(2) the workers call; tests put one here that blocks. Null: ::statfs.
  int (*statfs_call)(const char* path, struct statfs* out) = nullptr;
};

inline constexpr std::size_t kMaxStalledMounts = 16;

// Fails (invalid_argument) only when an exclude regex does not compile. The first sweep says
// whether the mounts file exists (no_such_file_or_directory when neither does).
[[nodiscard]] platform::Result<std::unique_ptr<Driver>> make_filesystem_driver(
    FilesystemOptions options);

}  // namespace gridnode::drivers
