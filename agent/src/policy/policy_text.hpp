#pragma once

// Small text helpers the policy's rule kinds share. Private to agent/src/policy/.

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/platform/roots.hpp"

namespace gridnode::agent::policy_text {

inline std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
      ++i;
    }
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') {
      ++j;
    }
    if (j > i) {
      out.push_back(line.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

// The next line of `text` (without its newline), which moves past it.
inline std::string_view next_line(std::string_view& text) {
  auto eol = text.find('\n');
  std::string_view line = text.substr(0, eol);
  text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
  return line;
}

// A limit's value or threshold as messages show it ("85", "0.5").
inline std::string fmt_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// <state_dir>/policy.bundle: the last good bundle, kept.
inline std::string bundle_keep_path(const std::string& state_dir) {
  return platform::Roots::join(state_dir, "policy.bundle");
}

}  // namespace gridnode::agent::policy_text
