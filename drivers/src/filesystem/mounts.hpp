#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gridnode::drivers::filesystem {

// One line of /proc/<pid>/mounts as node_exporter 1.5 reads it (parseFilesystemLabels).
struct Mount {
  std::string device;
  std::string mount_point;  // \040 and \011 decoded, the rootfs prefix stripped
  std::string fs_type;
  bool read_only = false;  // "ro" among the options
};

struct Mounts {
  std::vector<Mount> mounts;
  std::uint64_t malformed = 0;  // lines with fewer than four fields, skipped
};

// Parses a mounts file. node_exporter fails the whole collector on a line with fewer than four
// fields; we skip that line and count it. Only \040 (space) and \011 (tab) are decoded in the
// mount point, as node_exporter does (the kernel also writes \012 and \134; they stay encoded
// there, and here). With `rootfs` other than "/", that prefix is stripped from each mount point
// as plain text (node_exporter's rootfsStripPrefix: TrimPrefix, "" becoming "/").
Mounts parse_mounts(std::string_view text, std::string_view rootfs);

}  // namespace gridnode::drivers::filesystem
