#include "procfs/procfs_parse.hpp"

#include <limits>

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::procfs {
namespace {

using platform::trim;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool all_digits(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!is_digit(c)) {
      return false;
    }
  }
  return true;
}

// Consumes \d+ from the front of `s`; false when there is no digit.
bool eat_digits(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && is_digit(s[n])) {
    ++n;
  }
  s.remove_prefix(n);
  return n > 0;
}

bool eat(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) {
    return false;
  }
  s.remove_prefix(prefix.size());
  return true;
}

bool valid_metric_name(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && is_digit(c));
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool next_line(std::string_view& rest, std::string_view& line) {
  if (rest.empty()) {
    return false;
  }
  std::size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) {
    line = rest;
    rest = {};
  } else {
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
  }
  return true;
}

std::string_view next_field(std::string_view& rest) {
  std::size_t i = 0;
  while (i < rest.size() && is_space(rest[i])) {
    ++i;
  }
  std::size_t start = i;
  while (i < rest.size() && !is_space(rest[i])) {
    ++i;
  }
  std::string_view field = rest.substr(start, i - start);
  rest.remove_prefix(i);
  return field;
}

platform::Result<std::uint64_t> parse_hundredths(std::string_view text) {
  std::string_view t = trim(text);
  std::string_view whole = t;
  std::string_view frac;
  if (std::size_t dot = t.find('.'); dot != std::string_view::npos) {
    whole = t.substr(0, dot);
    frac = t.substr(dot + 1);
    if (frac.empty() || frac.size() > 2 || !all_digits(frac)) {
      return platform::fail(std::errc::invalid_argument, "not a decimal with two places");
    }
  }
  if (!all_digits(whole)) {
    return platform::fail(std::errc::invalid_argument, "not a decimal with two places");
  }
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t v = 0;
  for (char c : whole) {
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (kMax - d) / 10) {
      return platform::fail(std::errc::result_out_of_range, "value does not fit in 64 bits");
    }
    v = v * 10 + d;
  }
  // "1.5" is 150 hundredths, "1.05" is 105.
  std::uint64_t f = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    f = f * 10 + (i < frac.size() ? static_cast<std::uint64_t>(frac[i] - '0') : 0);
  }
  if (v > (kMax - f) / 100) {
    return platform::fail(std::errc::result_out_of_range, "value does not fit in 64 bits");
  }
  return v * 100 + f;
}

StatLine parse_stat_line(std::string_view line) {
  StatLine out;
  std::string_view rest = line;
  out.key = next_field(rest);
  for (std::string_view f = next_field(rest); !f.empty() && out.count < kCpuModes;
       f = next_field(rest)) {
    out.values[out.count++] = f;
  }
  std::string_view k = out.key;
  if (k.size() > 3 && k.substr(0, 3) == "cpu") {
    std::string_view id = k.substr(3);
    // Bounded so that a corrupt "cpu99999999999" neither overflows nor, through the zero
    // rows node_exporter adds for missing CPU numbers, makes billions of series.
    if (id.size() <= 9 && all_digits(id)) {
      std::uint32_t n = 0;
      for (char c : id) {
        n = n * 10 + static_cast<std::uint32_t>(c - '0');
      }
      out.kind = StatLine::Kind::cpu;
      out.cpu = n;
    } else {
      out.kind = StatLine::Kind::bad_cpu;
    }
  } else if (k == "btime") {
    out.kind = StatLine::Kind::btime;
  } else if (k == "ctxt") {
    out.kind = StatLine::Kind::ctxt;
  } else if (k == "processes") {
    out.kind = StatLine::Kind::processes;
  } else if (k == "intr") {
    out.kind = StatLine::Kind::intr;
  } else if (k == "procs_running") {
    out.kind = StatLine::Kind::procs_running;
  } else if (k == "procs_blocked") {
    out.kind = StatLine::Kind::procs_blocked;
  }
  return out;
}

void clamp_cpu_counters(std::array<std::uint64_t, kCpuModes>& state,
                        const std::array<std::uint64_t, kCpuModes>& now) {
  constexpr std::size_t kIdle = 3;
  constexpr std::uint64_t kJumpBackTicks = 300;  // node_exporter's jumpBackSeconds = 3.0
  if (state[kIdle] >= now[kIdle] && state[kIdle] - now[kIdle] >= kJumpBackTicks) {
    state.fill(0);
  }
  for (std::size_t i = 0; i < kCpuModes; ++i) {
    if (now[i] >= state[i]) {
      state[i] = now[i];
    }
  }
}

MeminfoLine parse_meminfo_line(std::string_view line) {
  MeminfoLine out;
  std::string_view rest = line;
  std::string_view key = next_field(rest);
  if (key.empty()) {
    return out;
  }
  std::string_view value = next_field(rest);
  std::string_view unit = next_field(rest);
  std::string_view extra = next_field(rest);
  out.key = key;
  // node_exporter strips the last character of the key whatever it is; a key without the
  // kernel's ':' is not a line it could have meant.
  if (key.size() < 2 || key.back() != ':' || value.empty() || !extra.empty()) {
    out.kind = MeminfoLine::Kind::bad;
    return out;
  }
  out.key = key.substr(0, key.size() - 1);
  out.value = value;
  out.kind = unit.empty() ? MeminfoLine::Kind::value : MeminfoLine::Kind::value_kb;
  return out;
}

std::string meminfo_metric_name(std::string_view key, bool has_unit) {
  // node_exporter rewrites the key with the regexp \((.*)\) -> _$1: the first '(' that has a
  // ')' after it, through the last ')', loses its parentheses and gains a '_'.
  std::string name = "node_memory_";
  std::size_t close = key.rfind(')');
  std::size_t open = key.find('(');
  if (close != std::string_view::npos && open != std::string_view::npos && open < close) {
    name += key.substr(0, open);
    name += '_';
    name += key.substr(open + 1, close - open - 1);
    name += key.substr(close + 1);
  } else {
    name += key;
  }
  if (has_unit) {
    name += "_bytes";
  }
  if (!valid_metric_name(name)) {
    return {};
  }
  return name;
}

NetdevLine parse_netdev_line(std::string_view line) {
  NetdevLine out;
  if (trim(line).empty()) {
    return out;
  }
  out.kind = NetdevLine::Kind::bad;
  std::size_t colon = line.rfind(':');
  if (colon == std::string_view::npos) {
    return out;
  }
  out.name = trim(line.substr(0, colon));
  if (out.name.empty()) {
    return out;
  }
  std::string_view rest = line.substr(colon + 1);
  for (std::string_view f = next_field(rest); !f.empty() && out.count < kNetdevColumns;
       f = next_field(rest)) {
    out.values[out.count++] = f;
  }
  if (out.count == kNetdevColumns) {
    out.kind = NetdevLine::Kind::device;
  }
  return out;
}

DiskstatsLine parse_diskstats_line(std::string_view line) {
  DiskstatsLine out;
  std::string_view rest = line;
  std::string_view major = next_field(rest);
  if (major.empty()) {
    return out;
  }
  out.kind = DiskstatsLine::Kind::bad;
  std::string_view minor = next_field(rest);
  out.name = next_field(rest);
  for (std::string_view f = next_field(rest); !f.empty() && out.count < kDiskColumns;
       f = next_field(rest)) {
    out.values[out.count++] = f;
  }
  if (all_digits(major) && all_digits(minor) && !out.name.empty() && out.count >= kDiskMinColumns) {
    out.kind = DiskstatsLine::Kind::device;
  }
  return out;
}

bool is_ignored_disk(std::string_view name) {
  std::string_view s = name;
  bool prefix = false;
  if (eat(s, "ram") || eat(s, "loop") || eat(s, "fd")) {
    prefix = true;
  } else if (eat(s, "xvd") || eat(s, "hd") || eat(s, "sd") || eat(s, "vd")) {
    // (h|s|v|xv)d[a-z]
    if (!s.empty() && is_lower(s.front())) {
      s.remove_prefix(1);
      prefix = true;
    }
  } else if (eat(s, "nvme")) {
    // nvme\d+n\d+p: the digits cannot swallow the 'n' or 'p', so no backtracking is needed.
    prefix = eat_digits(s) && eat(s, "n") && eat_digits(s) && eat(s, "p");
  }
  if (!prefix) {
    return false;
  }
  // \d+$
  return eat_digits(s) && s.empty();
}

bool is_ignored_netdev(std::string_view name) { return name == "lo"; }

std::string_view parse_boot_id(std::string_view text) {
  std::string_view t = trim(text);
  if (t.size() != 36) {
    return {};
  }
  for (std::size_t i = 0; i < t.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? t[i] != '-' : !is_hex(t[i])) {
      return {};
    }
  }
  return t;
}

}  // namespace gridnode::drivers::procfs
