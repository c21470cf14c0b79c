#include "endpoint.hpp"

#include "gridnode/platform/files.hpp"

namespace gridnode::collector {

platform::Result<asio::ip::tcp::endpoint> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return platform::fail(std::errc::invalid_argument, "\"" + text + "\": HOST:PORT expected");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto port = platform::parse_uint64(text.substr(colon + 1));
  std::error_code ec;
  auto addr = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec || !port || *port > 65535) {
    return platform::fail(std::errc::invalid_argument,
                          "\"" + text + "\": an IP address and a port expected");
  }
  return asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(*port));
}

}  // namespace gridnode::collector
