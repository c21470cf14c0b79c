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

platform::Result<void> listen_on(asio::ip::tcp::acceptor& acceptor, const std::string& text) {
  auto ep = parse_endpoint(text);
  if (!ep) {
    return tl::unexpected(ep.error());
  }
  std::error_code ec;
  acceptor.open(ep->protocol(), ec);
  if (!ec) acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(*ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return platform::fail(ec, "cannot listen on " + text);
  }
  return {};
}

}  // namespace gridnode::collector
