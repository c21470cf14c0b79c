#pragma once

#include <string>

#include <asio/ip/tcp.hpp>

#include "gridnode/platform/result.hpp"

namespace gridnode::collector {

// "HOST:PORT" or "[v6]:PORT" (an empty host is 0.0.0.0) as an endpoint to listen on.
[[nodiscard]] platform::Result<asio::ip::tcp::endpoint> parse_endpoint(const std::string& text);

// Opens, binds (SO_REUSEADDR) and listens `acceptor` on `text` ("HOST:PORT").
[[nodiscard]] platform::Result<void> listen_on(asio::ip::tcp::acceptor& acceptor,
                                               const std::string& text);

}  // namespace gridnode::collector
