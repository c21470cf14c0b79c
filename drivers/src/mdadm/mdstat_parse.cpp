#include "mdadm/mdstat_parse.hpp"

#include <charconv>
#include <limits>

namespace gridnode::drivers::mdadm {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::int64_t count(std::string_view text, std::string_view part) {
  std::int64_t n = 0;
  for (std::size_t pos = text.find(part); pos != std::string_view::npos;
       pos = text.find(part, pos + part.size())) {
    ++n;
  }
  return n;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Go's strings.Fields, one field at a time: false when none is left.
bool next_field(std::string_view& rest, std::string_view& field) {
  std::size_t start = 0;
  while (start < rest.size() && is_space(rest[start])) {
    ++start;
  }
  if (start == rest.size()) {
    rest = {};
    return false;
  }
  std::size_t end = start;
  while (end < rest.size() && !is_space(rest[end])) {
    ++end;
  }
  field = rest.substr(start, end - start);
  rest.remove_prefix(end);
  return true;
}

// strconv.ParseInt(s, 10, 64): an optional sign, then decimal digits.
bool parse_int(std::string_view text, std::int64_t& out) {
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
    if (!text.empty() && text.front() == '-') {
      return false;
    }
  }
  if (text.empty()) {
    return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// A run of digits at the start of `text`, parsed; its length, 0 if none or too big.
std::size_t digits_at(std::string_view text, std::int64_t& out) {
  std::size_t n = 0;
  while (n < text.size() && is_digit(text[n])) {
    ++n;
  }
  if (n == 0 || !parse_int(text.substr(0, n), out)) {
    return 0;
  }
  return n;
}

// `[N/M] [U_…]` at the start of `text`.
bool status_at(std::string_view text, std::int64_t& total, std::int64_t& active,
               std::int64_t& down) {
  if (text.empty() || text[0] != '[') {
    return false;
  }
  text.remove_prefix(1);
  std::size_t n = digits_at(text, total);
  if (n == 0 || n >= text.size() || text[n] != '/') {
    return false;
  }
  text.remove_prefix(n + 1);
  n = digits_at(text, active);
  if (n == 0 || text.substr(n, 3) != "] [") {
    return false;
  }
  text.remove_prefix(n + 3);
  std::size_t flags = 0;
  while (flags < text.size() && (text[flags] == 'U' || text[flags] == '_')) {
    ++flags;
  }
  if (flags == 0 || flags >= text.size() || text[flags] != ']') {
    return false;
  }
  down = count(text.substr(0, flags), "_");
  return true;
}

// procfs's statusLineRE, `(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]`: the leftmost
// "<digits> blocks ", then (greedy .*) the last "[N/M] [U_]" after it.
bool match_status(std::string_view line, std::int64_t& total, std::int64_t& active,
                  std::int64_t& down) {
  std::size_t after = std::string_view::npos;
  for (std::size_t pos = line.find(" blocks "); pos != std::string_view::npos;
       pos = line.find(" blocks ", pos + 1)) {
    if (pos > 0 && is_digit(line[pos - 1])) {
      after = pos + 8;
      break;
    }
  }
  if (after == std::string_view::npos) {
    return false;
  }
  for (std::size_t q = line.size(); q-- > after;) {
    if (line[q] == '[' && status_at(line.substr(q), total, active, down)) {
      return true;
    }
  }
  return false;
}

// procfs's recoveryLineBlocksRE, `\((\d+)/\d+\)`: the first "(done/total)".
bool match_synced(std::string_view line, std::int64_t& synced) {
  for (std::size_t pos = line.find('('); pos != std::string_view::npos;
       pos = line.find('(', pos + 1)) {
    std::string_view rest = line.substr(pos + 1);
    std::int64_t done = 0;
    std::size_t n = digits_at(rest, done);
    if (n == 0 || n >= rest.size() || rest[n] != '/') {
      continue;
    }
    std::size_t m = n + 1;
    while (m < rest.size() && is_digit(rest[m])) {
      ++m;
    }
    if (m > n + 1 && m < rest.size() && rest[m] == ')') {
      synced = done;
      return true;
    }
  }
  return false;
}

}  // namespace

bool MdstatReader::Lines::next(std::string_view& line) {
  if (end) {
    return false;
  }
  std::size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) {
    line = rest;
    rest = {};
    end = true;
    return true;
  }
  line = rest.substr(0, nl);
  rest.remove_prefix(nl + 1);
  return true;
}

bool MdstatReader::next(MdDevice& out) {
  std::string_view line;
  for (;;) {
    if (!lines_.next(line)) {
      return false;
    }
    std::string_view probe = line;
    std::string_view first;
    if (!next_field(probe, first) || line[0] == ' ' || line.starts_with("Personalities") ||
        line.starts_with("unused")) {
      continue;
    }
    break;
  }
  out = MdDevice{};
  std::string_view fields = line;
  std::string_view state;
  next_field(fields, out.name);
  std::string_view colon;
  if (!next_field(fields, colon) || !next_field(fields, state)) {
    out.error = "not enough fields in md line (expected at least 3)";
    return true;
  }
  Lines peek = lines_;
  std::string_view following[3];
  for (auto& l : following) {
    if (!peek.next(l)) {
      out.error = "too few lines for md device";
      return true;
    }
  }
  out.activity = state == "active"     ? Activity::active
                 : state == "inactive" ? Activity::inactive
                                       : Activity::other;
  out.disks_failed = count(line, "(F)");
  out.disks_spare = count(line, "(S)");

  // The status line: its first field is the size in blocks.
  std::string_view status = following[0];
  std::string_view size;
  if (!next_field(status, size) || !parse_int(size, out.blocks_total)) {
    out.error = "status line does not start with the size";
    return true;
  }
  if (contains(line, "raid0") || contains(line, "linear")) {
    // Only the members carry a number in [] on the device line.
    out.disks_total = count(line, "[");
    out.disks_active = out.disks_total;
  } else if (!contains(line, "inactive")) {
    if (!match_status(following[0], out.disks_total, out.disks_active, out.disks_down)) {
      out.error = "status line without [N/M] [U_]";
      return true;
    }
  }

  std::string_view sync = contains(following[1], "bitmap") ? following[2] : following[1];
  out.blocks_synced = out.blocks_total;
  bool recovering = contains(sync, "recovery");
  bool resyncing = contains(sync, "resync");
  bool checking = contains(sync, "check");
  if (recovering || resyncing || checking) {
    out.activity = recovering ? Activity::recovering
                   : checking ? Activity::checking
                              : Activity::resyncing;
    if (contains(sync, "PENDING") || contains(sync, "DELAYED")) {
      out.blocks_synced = 0;
    } else if (!match_synced(sync, out.blocks_synced)) {
      out.error = "sync line without (done/total)";
      return true;
    }
  }
  return true;
}

}  // namespace gridnode::drivers::mdadm
