#include "accelerator/process_owner.hpp"

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::accelerators {
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

ProcessOwner process_owner(const platform::Roots& roots, std::uint32_t pid) {
  ProcessOwner o;
  std::string dir = roots.proc(std::to_string(pid));
  std::string text;
  if (platform::read_file(dir + "/status", text, 64 << 10)) {
    if (auto uid = parse_status_uid(text)) {
      o.uid = std::to_string(*uid);
    }
  }
  if (platform::read_file(dir + "/cgroup", text, 64 << 10)) {
    o.cgroup = parse_cgroup_path(text);
  }
  return o;
}

Family process_family() {
  return {"gridnode_gpu_process_memory_used_bytes",
          "GPU memory used by a running compute process.",
          MetricType::gauge,
          {},
          "B"};
}

void ProcessSeries::publish(std::vector<Labels>& labels, const std::vector<std::uint64_t>& memory,
                            std::uint64_t absent, const std::shared_ptr<const Catalog>& base,
                            std::uint32_t family, std::shared_ptr<const Catalog>& catalog,
                            Sweep& out) {
  if (labels != keys_) {
    if (labels.empty()) {
      catalog = base;
    } else {
      Catalog c = *base;
      for (const auto& l : labels) {
        c.add_series(family, l);
      }
      catalog = std::make_shared<const Catalog>(std::move(c));
    }
    keys_ = std::move(labels);
    out.catalog = catalog;
  }
  const auto first = static_cast<std::uint32_t>(base->series.size());
  for (std::size_t i = 0; i < memory.size(); ++i) {
    if (memory[i] != absent) {
      out.readings.push_back(
          {first + static_cast<std::uint32_t>(i), Value::of_unsigned(memory[i])});
    }
  }
}

}  // namespace gridnode::drivers::accelerators
