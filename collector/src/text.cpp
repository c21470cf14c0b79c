#include "text.hpp"

#include <array>
#include <cstdio>
#include <ctime>

namespace gridnode::collector {

std::string rfc3339_ns(std::uint64_t unix_ns) {
  std::time_t secs = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  std::array<char, 64> buf{};
  std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::array<char, 16> frac{};
  std::snprintf(frac.data(), frac.size(), ".%09lluZ",
                static_cast<unsigned long long>(unix_ns % 1'000'000'000));
  return std::string(buf.data(), n) + frac.data();
}

std::string uuid_text(const protocol::BootId& id) {
  std::string hex = crypto::to_hex(id);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gridnode::collector
