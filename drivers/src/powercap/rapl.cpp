#include "powercap/rapl.hpp"

#include <charconv>
#include <limits>
#include <vector>

namespace gridnode::drivers::powercap {
namespace {

bool is_name_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

}  // namespace

std::string sanitize_metric_name(std::string_view name) {
  // The regexp `_*[^0-9A-Za-z_]+_*`, leftmost-first: a match starts at a run of underscores
  // only if a forbidden character follows the run; otherwise the underscores are kept.
  std::string out;
  out.reserve(name.size());
  std::size_t i = 0;
  while (i < name.size()) {
    if (is_name_char(name[i]) && name[i] != '_') {
      out.push_back(name[i++]);
      continue;
    }
    std::size_t j = i;
    while (j < name.size() && name[j] == '_') {
      ++j;
    }
    if (j == name.size() || is_name_char(name[j])) {
      out.append(name.substr(i, j - i));
      i = j;
      continue;
    }
    while (j < name.size() && !is_name_char(name[j])) {
      ++j;
    }
    while (j < name.size() && name[j] == '_') {
      ++j;
    }
    out.push_back('_');
    i = j;
  }
  return out;
}

std::optional<std::int64_t> parse_atoi(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || text.front() < '0' || text.front() > '9') {
    return std::nullopt;
  }
  // Parse the magnitude unsigned so that "-9223372036854775808" fits, as in Go.
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude, 10);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  constexpr std::uint64_t kMaxPositive =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (negative) {
    if (magnitude > kMaxPositive + 1) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(0 - magnitude);
  }
  if (magnitude > kMaxPositive) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(magnitude);
}

std::string clean_path(std::string_view path) {
  if (path.empty()) {
    return ".";
  }
  bool rooted = path.front() == '/';
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) {
      j = path.size();
    }
    std::string_view part = path.substr(i, j - i);
    i = j + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
      }
      continue;
    }
    parts.push_back(part);
  }
  std::string out = rooted ? "/" : "";
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) {
      out.push_back('/');
    }
    out.append(parts[k]);
  }
  return out.empty() ? "." : out;
}

std::pair<std::int64_t, std::string> RaplNamer::next(std::string_view name) {
  std::int64_t index = 0;
  std::string base;
  std::size_t dash = name.find('-');
  std::optional<std::int64_t> suffix;
  if (dash != std::string_view::npos && name.find('-', dash + 1) == std::string_view::npos) {
    suffix = parse_atoi(name.substr(dash + 1));
  }
  if (suffix) {
    index = *suffix;
    base = std::string(name.substr(0, dash));
  } else {
    base = std::string(name);
    auto it = counts_.find(base);
    index = it == counts_.end() ? 0 : it->second;
  }
  // Go's int wraps on overflow; so does this.
  counts_[base] = static_cast<std::int64_t>(static_cast<std::uint64_t>(index) + 1);
  return {index, std::move(base)};
}

std::uint64_t EnergyCounter::update(std::uint64_t raw, std::optional<std::uint64_t> max_range) {
  if (!primed_) {
    primed_ = true;
    last_ = raw;
    return raw;
  }
  if (raw < last_) {
    if (max_range && *max_range != 0 && last_ <= *max_range) {
      offset_ += *max_range + 1;  // one wrap: see the class comment
    } else {
      offset_ = 0;  // a reset
    }
  }
  last_ = raw;
  return offset_ + raw;
}

}  // namespace gridnode::drivers::powercap
