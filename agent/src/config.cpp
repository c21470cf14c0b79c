#include "gridnode/agent/config.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

// Header-only: see agent/CMakeLists.txt.
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/files.hpp"
#include "toml_guard.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::agent {
namespace {

using platform::fail;
using platform::Result;

constexpr double kMinInterval = 0.01;
constexpr double kMaxInterval = 3600;

// Seconds (already range-checked, so positive and small) to the nearest nanosecond. Rounded
// by hand: std::llround is the daemon's only reason to map libm.
std::chrono::nanoseconds to_nanoseconds(double seconds) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9 + 0.5));
}

std::string where(const std::string& origin, const toml::node& node) {
  auto line = node.source().begin.line;
  return line > 0 ? origin + ":" + std::to_string(line) : origin;
}

platform::Error bad(const std::string& origin, const toml::node& node, std::string_view key,
                    std::string_view what) {
  return platform::Error{std::make_error_code(std::errc::invalid_argument),
                         where(origin, node) + ": " + std::string(key) + ": " + std::string(what)};
}

Result<std::chrono::nanoseconds> seconds_from(const std::string& origin, const toml::node& node,
                                              std::string_view key, double lo, double hi) {
  std::optional<double> v = node.value<double>();  // integers convert too
  if (!v || !std::isfinite(*v) || *v < lo || *v > hi) {
    return tl::unexpected(bad(origin, node, key,
                              "must be a number of seconds between " + std::to_string(lo) +
                                  " and " + std::to_string(hi)));
  }
  return to_nanoseconds(*v);
}

Result<std::string> string_from(const std::string& origin, const toml::node& node,
                                std::string_view key, bool allow_empty) {
  const auto* s = node.as_string();
  if (s == nullptr) {
    return tl::unexpected(bad(origin, node, key, "must be a string"));
  }
  if (!allow_empty && s->get().empty()) {
    return tl::unexpected(bad(origin, node, key, "must not be empty"));
  }
  return s->get();
}

// Walks one table, calling `apply(key, node)` for each known key and failing on any other.
template <class Apply>
Result<void> each_key(const std::string& origin, const toml::table& table,
                      std::string_view section, const std::set<std::string_view>& known,
                      Apply&& apply) {
  for (const auto& [k, node] : table) {
    std::string full = std::string(section) + "." + std::string(k.str());
    if (!known.contains(k.str())) {
      return tl::unexpected(platform::Error{std::make_error_code(std::errc::invalid_argument),
                                            where(origin, node) + ": unknown key " + full});
    }
    if (auto r = apply(k.str(), node, full); !r) {
      return r;
    }
  }
  return {};
}

// Node labels stay sorted by key, as the report wants them.
void set_label(platform::Labels& labels, std::string key, std::string value) {
  for (auto& [k, v] : labels) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  labels.emplace_back(std::move(key), std::move(value));
  std::sort(labels.begin(), labels.end());
}


// A driver's section, handed over as values with where they came from; the driver's registry
// entry checks it. Merged into `sections` key by key, as the agent's own sections are.
Result<void> driver_section(const std::string& origin, const std::string& name,
                            const toml::node& node, std::vector<drivers::OptionSection>& sections) {
  const auto* t = node.as_table();
  if (t == nullptr) {
    return tl::unexpected(bad(origin, node, name, "must be a table ([" + name + "])"));
  }
  auto it = std::find_if(sections.begin(), sections.end(),
                         [&](const drivers::OptionSection& s) { return s.name == name; });
  drivers::OptionSection merged = it == sections.end() ? drivers::OptionSection{name, {}} : *it;
  // toml++ keeps a table sorted by key; the driver sees the keys in the file's order, so that
  // the first error it names is the first in the file.
  std::vector<std::pair<std::string_view, const toml::node*>> keys;
  for (const auto& [k, v] : *t) {
    keys.emplace_back(k.str(), &v);
  }
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return a.second->source().begin.line < b.second->source().begin.line;
  });
  for (const auto& [k, node_ptr] : keys) {
    const toml::node& v = *node_ptr;
    const std::string full = name + "." + std::string(k);
    drivers::OptionValue value{std::string(k), where(origin, v), false};
    if (const auto* b = v.as_boolean()) {
      value.value = b->get();
    } else if (const auto* i = v.as_integer()) {
      value.value = i->get();
    } else if (const auto* d = v.as_floating_point()) {
      value.value = d->get();
    } else if (const auto* s = v.as_string()) {
      value.value = s->get();
    } else if (const auto* a = v.as_array()) {
      std::vector<std::string> items;
      for (const auto& item : *a) {
        const auto* s = item.as_string();
        if (s == nullptr) {
          return tl::unexpected(bad(origin, item, full, "must be an array of strings"));
        }
        items.push_back(s->get());
      }
      value.value = std::move(items);
    } else {
      return tl::unexpected(
          bad(origin, v, full, "must be a string, a number, true/false or an array of strings"));
    }
    merged.set(std::move(value));
  }
  if (auto ok = drivers::check_section(merged); !ok) {
    return ok;
  }
  if (it == sections.end()) {
    sections.push_back(std::move(merged));
  } else {
    *it = std::move(merged);
  }
  return {};
}

}  // namespace

Result<void> check_endpoint(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return fail(std::errc::invalid_argument, "\"" + std::string(text) + "\": HOST:PORT expected");
  }
  auto port = platform::parse_uint64(text.substr(colon + 1));
  if (!port || *port == 0 || *port > 65535) {
    return fail(std::errc::invalid_argument,
                "\"" + std::string(text) + "\": the port must be 1 to 65535");
  }
  return {};
}

Result<void> check_listen_address(std::string_view text) {
  auto colon = text.rfind(':');
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    return fail(std::errc::invalid_argument, quoted + ": HOST:PORT or :PORT expected");
  }
  const std::string_view host = text.substr(0, colon);
  if (host.find(':') != std::string_view::npos &&
      (host.size() < 2 || host.front() != '[' || host.back() != ']')) {
    return fail(std::errc::invalid_argument, quoted + ": an IPv6 address goes in brackets");
  }
  auto port = platform::parse_uint64(text.substr(colon + 1));
  if (!port || *port > 65535) {
    return fail(std::errc::invalid_argument, quoted + ": the port must be 0 to 65535");
  }
  return {};
}

Result<void> check_telemetry_path(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.size() < 2 || text.front() != '/' || text.size() > 256) {
    return fail(std::errc::invalid_argument,
                quoted + ": must start with '/' and name a path other than '/' (the index page)");
  }
  for (char ch : text) {
    if (ch <= ' ' || ch > '~' || ch == '"' || ch == '<' || ch == '>' || ch == '?' || ch == '#' ||
        ch == '\'' || ch == '&') {
      return fail(std::errc::invalid_argument, quoted + ": only printable ASCII without spaces, "
                                                        "quotes, '<', '>', '&', '?' or '#'");
    }
  }
  return {};
}

Result<std::chrono::nanoseconds> parse_seconds(std::string_view text) {
  std::string s(platform::trim(text));
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < kMinInterval ||
      v > kMaxInterval) {
    return fail(std::errc::invalid_argument,
                "\"" + s + "\": must be a number of seconds between 0.01 and 3600");
  }
  return to_nanoseconds(v);
}

Result<platform::Level> parse_level(std::string_view text) {
  using platform::Level;
  if (text == "err" || text == "error") {
    return Level::err;
  }
  if (text == "warning") {
    return Level::warning;
  }
  if (text == "notice") {
    return Level::notice;
  }
  if (text == "info") {
    return Level::info;
  }
  if (text == "debug") {
    return Level::debug;
  }
  return fail(std::errc::invalid_argument,
              "\"" + std::string(text) + "\": must be one of error, warning, notice, info, debug");
}

Result<Config> parse_config(std::string_view toml_text, const std::string& origin, Config c) {
  auto parsed = parse_toml(toml_text, origin);
  if (!parsed) {
    return tl::unexpected(parsed.error());
  }
  toml::table root = std::move(*parsed);

  auto section = [&](std::string_view name, const toml::node& node,
                     const std::set<std::string_view>& known, auto&& apply) -> Result<void> {
    const auto* t = node.as_table();
    if (t == nullptr) {
      return tl::unexpected(bad(origin, node, name, "must be a table ([" + std::string(name) + "])"));
    }
    return each_key(origin, *t, name, known, apply);
  };

  for (const auto& [k, node] : root) {
    Result<void> r;
    if (k.str() == "agent") {
      r = section("agent", node,
                  {"interval", "sweep_timeout", "drivers", "log_level", "state_dir"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "interval" || key == "sweep_timeout") {
                      auto s = seconds_from(origin, v, full, kMinInterval, kMaxInterval);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      (key == "interval" ? c.interval : c.sweep_timeout) = *s;
                    } else if (key == "drivers") {
                      const auto* arr = v.as_array();
                      if (arr == nullptr) {
                        return tl::unexpected(bad(origin, v, full, "must be an array of driver names"));
                      }
                      c.drivers.clear();
                      for (const auto& item : *arr) {
                        auto name = string_from(origin, item, full, false);
                        if (!name) {
                          return tl::unexpected(name.error());
                        }
                        c.drivers.push_back(*name);
                      }
                    } else if (key == "log_level") {
                      auto s = string_from(origin, v, full, false);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      auto level = parse_level(*s);
                      if (!level) {
                        return tl::unexpected(bad(origin, v, full, level.error().context));
                      }
                      c.log_level = *level;
                    } else if (key == "state_dir") {
                      auto s = string_from(origin, v, full, false);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      c.state_dir = *s;
                    }
                    return {};
                  });
    } else if (k.str() == "paths") {
      r = section("paths", node, {"sysfs", "procfs", "rootfs"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    auto s = string_from(origin, v, full, false);
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    (key == "sysfs"    ? c.roots.sysfs
                     : key == "procfs" ? c.roots.procfs
                                       : c.roots.rootfs) = *s;
                    return {};
                  });
    } else if (k.str() == "control") {
      r = section("control", node, {"socket", "group", "mode"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    auto s = string_from(origin, v, full, key == "group");
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    if (key == "socket") {
                      if (s->size() >= 108) {
                        return tl::unexpected(bad(origin, v, full, "longer than a Unix socket path may be (107 bytes)"));
                      }
                      c.socket_path = *s;
                    } else if (key == "group") {
                      c.socket_group = *s;
                    } else {
                      char* end = nullptr;
                      unsigned long mode = std::strtoul(s->c_str(), &end, 8);
                      if (s->empty() || *end != '\0' || mode > 0777 || (mode & 0600) != 0600) {
                        return tl::unexpected(bad(origin, v, full, "must be an octal mode such as \"0660\" that lets the owner read and write"));
                      }
                      c.socket_mode = static_cast<unsigned>(mode);
                    }
                    return {};
                  });
    } else if (k.str() == "node") {
      r = section("node", node, {"id", "region", "site", "rack"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    auto s = string_from(origin, v, full, false);
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    if (key == "id") {
                      if (!protocol::valid_node_id(*s)) {
                        return tl::unexpected(bad(origin, v, full, "must be 1 to 128 of A-Z a-z 0-9 . _ -"));
                      }
                      c.node_id = *s;
                      return {};
                    }
                    if (s->size() > 128) {
                      return tl::unexpected(bad(origin, v, full, "longer than 128 bytes"));
                    }
                    set_label(c.node_labels, std::string(key), *s);
                    return {};
                  });
    } else if (k.str() == "upstream") {
      r = section("upstream", node, {"endpoints", "ca", "cert", "key", "pin"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "endpoints") {
                      const auto* arr = v.as_array();
                      if (arr == nullptr) {
                        return tl::unexpected(bad(origin, v, full, "must be an array of \"HOST:PORT\" strings"));
                      }
                      c.upstream_endpoints.clear();
                      for (const auto& item : *arr) {
                        auto e = string_from(origin, item, full, false);
                        if (!e) {
                          return tl::unexpected(e.error());
                        }
                        if (auto ok = check_endpoint(*e); !ok) {
                          return tl::unexpected(bad(origin, item, full, ok.error().context));
                        }
                        c.upstream_endpoints.push_back(*e);
                      }
                      return {};
                    }
                    auto s = string_from(origin, v, full, key != "ca");
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    if (key == "pin") {
                      if (!s->empty() && !crypto::digest_from_hex(*s)) {
                        return tl::unexpected(bad(origin, v, full, "must be 64 hex digits (SHA-256 of the collector's public key)"));
                      }
                      c.upstream_pin = *s;
                    } else {
                      (key == "ca" ? c.upstream_ca : key == "cert" ? c.upstream_cert : c.upstream_key) = *s;
                    }
                    return {};
                  });
    } else if (k.str() == "spool") {
      r = section("spool", node, {"max_bytes", "fsync_interval"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "fsync_interval") {
                      auto s = seconds_from(origin, v, full, 0.0, 60);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      c.spool_fsync_interval = *s;
                      return {};
                    }
                    std::optional<std::int64_t> n = v.value_exact<std::int64_t>();
                    if (!n || *n < (16 << 10)) {
                      return tl::unexpected(bad(origin, v, full, "must be a number of bytes, at least 16384"));
                    }
                    c.spool_max_bytes = static_cast<std::uint64_t>(*n);
                    return {};
                  });
    } else if (k.str() == "policy") {
      r = section("policy", node, {"file", "bundle_dir", "key", "bundle_interval"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "bundle_interval") {
                      auto s = seconds_from(origin, v, full, 0.1, 3600);
                      if (!s) {
                        return tl::unexpected(s.error());
                      }
                      c.policy_bundle_interval = *s;
                      return {};
                    }
                    auto s = string_from(origin, v, full, key != "file");
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    if (key == "file") {
                      c.policy_file = *s;
                      c.policy_file_required = true;
                    } else {
                      (key == "bundle_dir" ? c.policy_bundle_dir : c.policy_key) = *s;
                    }
                    return {};
                  });
    } else if (k.str() == "web") {
      r = section("web", node, {"listen_addresses", "config_file", "telemetry_path", "max_requests"},
                  [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                    if (key == "listen_addresses") {
                      const auto* arr = v.as_array();
                      if (arr == nullptr) {
                        return tl::unexpected(bad(origin, v, full, "must be an array of \"HOST:PORT\" strings"));
                      }
                      c.web_listen.clear();
                      for (const auto& item : *arr) {
                        auto a = string_from(origin, item, full, false);
                        if (!a) {
                          return tl::unexpected(a.error());
                        }
                        if (auto ok = check_listen_address(*a); !ok) {
                          return tl::unexpected(bad(origin, item, full, ok.error().context));
                        }
                        c.web_listen.push_back(*a);
                      }
                      return {};
                    }
                    if (key == "max_requests") {
                      std::optional<std::int64_t> n = v.value_exact<std::int64_t>();
                      if (!n || *n < 0 || *n > 1024) {
                        return tl::unexpected(bad(origin, v, full, "must be an integer from 0 to 1024 (0: the server's bound, 64)"));
                      }
                      c.web_max_requests = static_cast<unsigned>(*n);
                      return {};
                    }
                    auto s = string_from(origin, v, full, key == "config_file");
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    if (key == "config_file") {
                      c.web_config_file = *s;
                    } else {
                      if (auto ok = check_telemetry_path(*s); !ok) {
                        return tl::unexpected(bad(origin, v, full, ok.error().context));
                      }
                      c.web_telemetry_path = *s;
                    }
                    return {};
                  });
    } else if (k.str() == "report") {
      r = section("report", node, {"keyframe_interval"},
                  [&](std::string_view, const toml::node& v, const std::string& full) -> Result<void> {
                    std::optional<std::int64_t> n = v.value_exact<std::int64_t>();
                    if (!n || *n < 1 || *n > 3600) {
                      return tl::unexpected(bad(origin, v, full, "must be an integer from 1 to 3600 (reports)"));
                    }
                    c.keyframe_interval = static_cast<std::uint32_t>(*n);
                    return {};
                  });
    } else if (drivers::has_section(k.str())) {
      r = driver_section(origin, std::string(k.str()), node, c.driver_sections);
    } else {
      r = tl::unexpected(platform::Error{std::make_error_code(std::errc::invalid_argument),
                                         where(origin, node) + ": unknown section [" +
                                             std::string(k.str()) + "]"});
    }
    if (!r) {
      return tl::unexpected(r.error());
    }
  }
  c.source = origin;
  return c;
}

drivers::DriverContext driver_context(const Config& config) {
  drivers::DriverContext o;
  o.roots = config.roots;
  o.state_dir = config.state_dir;
  o.sweep_timeout = config.sweep_timeout;
  return o;
}

Result<Config> read_config(const std::string& path, Config base) {
  std::string text;
  if (auto r = platform::read_file(path, text, 1 << 20); !r) {
    return tl::unexpected(r.error());
  }
  return parse_config(text, path, std::move(base));
}

}  // namespace gridnode::agent
