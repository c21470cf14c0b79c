#include <string>
#include <string_view>

#include "gridnode/platform/files.hpp"
#include "ipmi/bmc.hpp"

namespace gridnode::drivers::ipmi {
namespace {

constexpr std::string_view kMagic = "gridnode-ipmi-sel 1";

}  // namespace

// One "key value" per line after the magic line, so that an operator can read (and delete) it.
std::string format_sel_position(const SelPosition& p) {
  std::string s(kMagic);
  s += "\nbmc ";
  s += p.bmc;
  s += "\nrecord_id ";
  s += std::to_string(p.valid ? p.record_id : 0);
  s += "\ntimestamp ";
  s += std::to_string(p.valid ? p.timestamp : 0);
  s += "\nerase_timestamp ";
  s += std::to_string(p.erase_timestamp);
  s += "\nvalid ";
  s += p.valid ? "1" : "0";
  s += "\n";
  return s;
}

platform::Result<SelPosition> parse_sel_position(std::string_view text) {
  SelPosition p;
  bool magic = false;
  bool have_record = false, have_time = false, have_erase = false, have_valid = false;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty()) {
      continue;
    }
    if (!magic) {
      if (line != kMagic) {
        return platform::fail(std::errc::invalid_argument,
                              "not a gridnode SEL position (first line \"" + std::string(line) + "\")");
      }
      magic = true;
      continue;
    }
    std::size_t sp = line.find(' ');
    std::string_view key = line.substr(0, sp);
    std::string_view value = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (key == "bmc") {
      p.bmc = std::string(value);
      continue;
    }
    auto n = platform::parse_uint64(value);
    if (!n) {
      return platform::fail(std::errc::invalid_argument,
                            std::string(key) + ": \"" + std::string(value) + "\" is not a number");
    }
    if (key == "record_id" && *n <= 0xffff) {
      p.record_id = static_cast<std::uint16_t>(*n);
      have_record = true;
    } else if (key == "timestamp" && *n <= 0xffffffffu) {
      p.timestamp = static_cast<std::uint32_t>(*n);
      have_time = true;
    } else if (key == "erase_timestamp" && *n <= 0xffffffffu) {
      p.erase_timestamp = static_cast<std::uint32_t>(*n);
      have_erase = true;
    } else if (key == "valid" && *n <= 1) {
      p.valid = *n == 1;
      have_valid = true;
    } else {
      return platform::fail(std::errc::invalid_argument,
                            "unknown or out-of-range line \"" + std::string(line) + "\"");
    }
  }
  if (!magic || !have_record || !have_time || !have_erase || !have_valid || p.bmc.empty()) {
    return platform::fail(std::errc::invalid_argument, "incomplete SEL position");
  }
  if (!p.valid) {
    p.record_id = 0;
    p.timestamp = 0;
  }
  return p;
}

}  // namespace gridnode::drivers::ipmi
