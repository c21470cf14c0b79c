#include "nvml/nvml_parse.hpp"

#include <cstring>

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::nvml {
namespace {

// Calls `each` with every line of `text`, without its newline.
template <class Fn>
void for_each_line(std::string_view text, Fn&& each) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!each(line)) {
      return;
    }
  }
}

}  // namespace

std::optional<std::uint32_t> parse_status_uid(std::string_view status) {
  std::optional<std::uint32_t> uid;
  for_each_line(status, [&](std::string_view line) {
    if (!line.starts_with("Uid:")) {
      return true;
    }
    line.remove_prefix(4);
    line = platform::trim(line);
    auto end = line.find_first_of(" \t");
    auto value = platform::parse_uint64(line.substr(0, end));
    if (value && *value <= UINT32_MAX) {
      uid = static_cast<std::uint32_t>(*value);
    }
    return false;
  });
  return uid;
}

std::string parse_cgroup_path(std::string_view cgroup) {
  std::string_view unified, memory, first;
  for_each_line(cgroup, [&](std::string_view line) {
    // hierarchy-ID:controller-list:cgroup-path; the path may itself hold ':'.
    auto a = line.find(':');
    auto b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) {
      return true;
    }
    std::string_view id = line.substr(0, a);
    std::string_view controllers = line.substr(a + 1, b - a - 1);
    std::string_view path = line.substr(b + 1);
    if (id == "0" && controllers.empty()) {
      unified = path;
      return false;
    }
    if (first.empty()) {
      first = path;
    }
    for (std::string_view rest = controllers; !rest.empty();) {
      auto comma = rest.find(',');
      if (rest.substr(0, comma) == "memory") {
        memory = path;
      }
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
    return true;
  });
  return std::string(!unified.empty() ? unified : !memory.empty() ? memory : first);
}

std::string from_c_buffer(const char* buf, std::size_t size) {
  return std::string(buf, ::strnlen(buf, size));
}

}  // namespace gridnode::drivers::nvml
