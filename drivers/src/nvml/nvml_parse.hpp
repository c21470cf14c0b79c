#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gridnode::drivers::nvml {

// The real uid of a process from /proc/<pid>/status ("Uid:\t1000\t1000\t1000\t1000").
std::optional<std::uint32_t> parse_status_uid(std::string_view status);

// The cgroup a process belongs to, from /proc/<pid>/cgroup: the unified (v2) hierarchy's path
// ("0::/system.slice/train.service"); on a v1-only host, the memory controller's, else the
// first line's. Empty when the text has no usable line.
std::string parse_cgroup_path(std::string_view cgroup);

// A C string from a fixed NVML buffer, up to its first NUL (or the buffer's end).
std::string from_c_buffer(const char* buf, std::size_t size);

}  // namespace gridnode::drivers::nvml
