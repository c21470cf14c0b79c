#include "gridnode/collector/remote_target.hpp"

#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <cstdio>
#include <set>

#include "gridnode/platform/files.hpp"

namespace gridnode::collector {
namespace {

platform::Error at(const std::string& origin, const toml::source_region& where,
                   const std::string& why) {
  return platform::Error{std::make_error_code(std::errc::invalid_argument),
                         origin + ":" + std::to_string(where.begin.line) + ": " + why};
}

// toml++ 3.x has undefined behaviour on some hostile text (agent/src/toml_guard.cpp says which);
// this file is small and plain, so the collector takes ASCII only and, as the one table header,
// "[[remote_write]]": neither bug can be reached then.
platform::Result<void> refuse_unusual(std::string_view text, const std::string& origin) {
  std::size_t line = 1, start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && static_cast<unsigned char>(text[i]) >= 0x80) {
      return platform::fail(std::errc::invalid_argument,
                            origin + ":" + std::to_string(line) + ": only ASCII is taken here");
    }
    if (i == text.size() || text[i] == '\n') {
      std::string_view l = platform::trim(text.substr(start, i - start));
      if (l.starts_with("[") && l != "[[remote_write]]") {
        return platform::fail(std::errc::invalid_argument,
                              origin + ":" + std::to_string(line) +
                                  ": the only table here is [[remote_write]]");
      }
      ++line;
      start = i + 1;
    }
  }
  return {};
}

platform::Result<std::string> read_text(const std::string& path) {
  std::string s;
  if (auto r = platform::read_file(path, s); !r) {
    return tl::unexpected(r.error());
  }
  return s;
}

platform::Result<std::string> read_secret(const std::string& path) {
  auto text = read_text(path);
  if (!text) {
    return tl::unexpected(text.error());
  }
  std::string s = std::move(*text);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

}  // namespace

std::string default_target_name(const std::string& url) {
  std::string_view rest = url;
  if (auto p = rest.find("://"); p != std::string_view::npos) {
    rest = rest.substr(p + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  if (auto p = rest.rfind('@'); p != std::string_view::npos) {
    rest = rest.substr(p + 1);  // never a password in a file name
  }
  std::string name;
  for (char c : rest) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-';
    name += plain ? c : '_';
  }
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (char c : url) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return name + "-" + std::string(hex, 8);
}

Outcome classify_response(long status) {
  if (status >= 200 && status < 300) {
    return Outcome::delivered;
  }
  if (status == 0 || status >= 500 || status == 429) {
    return Outcome::retry;
  }
  if ((status >= 300 && status < 400) || status == 401 || status == 403 || status == 404 ||
      status == 407) {
    return Outcome::refused;
  }
  return Outcome::dropped;
}

platform::Result<std::vector<RemoteTarget>> parse_remote_write_config(
    std::string_view text, const std::string& origin, const RemoteTarget& defaults) {
  if (auto r = refuse_unusual(text, origin); !r) {
    return tl::unexpected(r.error());
  }
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return platform::fail(std::errc::invalid_argument,
                          origin + ":" + std::to_string(e.source().begin.line) + ": " +
                              std::string(e.description()));
  }
  std::vector<RemoteTarget> out;
  for (auto&& [k, v] : root) {
    if (k.str() != "remote_write" || !v.is_array_of_tables()) {
      return tl::unexpected(at(origin, k.source(), "unknown key " + std::string(k.str()) +
                                                       " (only [[remote_write]] tables)"));
    }
  }
  const toml::array* targets = root["remote_write"].as_array();
  if (targets == nullptr || targets->empty()) {
    return platform::fail(std::errc::invalid_argument, origin + ": no [[remote_write]] table");
  }
  std::set<std::string> names;
  for (const toml::node& n : *targets) {
    const toml::table& t = *n.as_table();
    RemoteTarget r = defaults;
    r.url.clear();
    r.name.clear();
    for (auto&& [name, value] : t) {
      // Plain references: clang 14 cannot capture a structured binding in a lambda.
      const toml::key& k = name;
      const toml::node& v = value;
      const std::string key(k.str());
      auto str = [&](std::string& into) -> platform::Result<void> {
        if (!v.is_string()) {
          return tl::unexpected(at(origin, k.source(), key + " must be a string"));
        }
        into = v.as_string()->get();
        return {};
      };
      auto secs = [&](auto& into, double min) -> platform::Result<void> {
        auto d = v.value<double>();
        if (!d || *d < min || *d > 86400) {
          return tl::unexpected(at(origin, k.source(), key + " must be seconds (" +
                                                           std::to_string(min) + " to 86400)"));
        }
        into = std::chrono::milliseconds(static_cast<std::int64_t>(*d * 1000));
        return {};
      };
      platform::Result<void> ok{};
      std::string file;
      if (key == "url") {
        ok = str(r.url);
      } else if (key == "name") {
        ok = str(r.name);
      } else if (key == "username") {
        ok = str(r.username);
      } else if (key == "job") {
        ok = str(r.job);
      } else if (key == "ca_file") {
        ok = str(r.ca_file);
      } else if (key == "password_file" || key == "bearer_token_file") {
        ok = str(file);
        if (ok) {
          auto secret = read_secret(file);
          if (!secret) {
            return tl::unexpected(at(origin, k.source(), key + ": " + secret.error().message()));
          }
          (key == "password_file" ? r.password : r.bearer_token) = std::move(*secret);
        }
      } else if (key == "resend_window") {
        ok = secs(r.resend_window, 0);
      } else if (key == "timeout") {
        ok = secs(r.timeout, 0.1);
      } else if (key == "max_samples_per_request") {
        auto i = v.value<std::int64_t>();
        if (!i || *i < 1 || *i > 1000000) {
          return tl::unexpected(at(origin, k.source(), key + " must be 1 to 1000000"));
        }
        r.max_samples = static_cast<std::size_t>(*i);
      } else {
        return tl::unexpected(at(origin, k.source(), "unknown key " + key));
      }
      if (!ok) {
        return tl::unexpected(ok.error());
      }
    }
    if (!r.url.starts_with("http://") && !r.url.starts_with("https://")) {
      return tl::unexpected(at(origin, t.source(), "url must be http:// or https://"));
    }
    if (!r.bearer_token.empty() && !r.username.empty()) {
      return tl::unexpected(at(origin, t.source(), "basic auth or a bearer token, not both"));
    }
    if (r.name.empty()) {
      r.name = default_target_name(r.url);
    }
    if (!names.insert(r.name).second) {
      return tl::unexpected(at(origin, t.source(), "two targets named " + r.name));
    }
    out.push_back(std::move(r));
  }
  return out;
}

platform::Result<std::vector<RemoteTarget>> make_remote_targets(const RemoteWriteFlags& flags) {
  RemoteTarget defaults;
  defaults.job = flags.job;
  defaults.resend_window =
      std::chrono::milliseconds(static_cast<std::int64_t>(flags.resend_window_s * 1000));
  std::vector<RemoteTarget> out;
  for (const auto& url : flags.urls) {
    if (!url.starts_with("http://") && !url.starts_with("https://")) {
      return platform::fail(std::errc::invalid_argument,
                            "--remote-write " + url + ": not an http:// or https:// URL");
    }
    RemoteTarget t = defaults;
    t.url = url;
    t.name = default_target_name(url);
    out.push_back(std::move(t));
  }
  if (!flags.config.empty()) {
    auto more = read_remote_write_config(flags.config, defaults);
    if (!more) {
      return tl::unexpected(more.error());
    }
    out.insert(out.end(), more->begin(), more->end());
  }
  std::set<std::string> names;
  for (const auto& t : out) {
    if (!names.insert(t.name).second) {
      return platform::fail(std::errc::invalid_argument,
                            "two remote-write targets named " + t.name + " (the same URL twice?)");
    }
  }
  return out;
}

platform::Result<std::vector<RemoteTarget>> read_remote_write_config(
    const std::string& path, const RemoteTarget& defaults) {
  auto text = read_text(path);
  if (!text) {
    return tl::unexpected(text.error());
  }
  return parse_remote_write_config(*text, path, defaults);
}

}  // namespace gridnode::collector
