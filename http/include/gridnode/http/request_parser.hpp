#pragma once

// The request-parsing step of http::Server, without sockets: bytes in, one request (or a
// refusal) out. http-parser (libhttp-parser-dev) does the parsing; this class applies the
// server's Limits and methods in its callbacks, so that a request that breaks a limit is refused
// as soon as the limit is passed, before more of it is held. The server and the fuzz target
// (fuzz/http_request_fuzz.cpp) drive the same code.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/http/server.hpp"

namespace gridnode::http {

class RequestParser {
 public:
  enum class Status : unsigned char {
    incomplete,  // every byte was consumed; more are needed
    complete,    // a whole request: request(), keep_alive(); then next()
    failed,      // refused: error_status(), error_text(); the connection ends
  };
  struct Fed {
    Status status;
    // Bytes used from the input: up to a complete request's last byte (pipelined bytes after it
    // are left for the next feed()), all of them when incomplete.
    std::size_t consumed;
  };

  RequestParser(const Limits& limits, std::vector<std::string> methods);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  Fed feed(std::string_view data);

  // After complete: the request (method, path, query, headers; remote and tls are the caller's)
  // and whether the connection may carry another one (HTTP/1.1 without Connection: close,
  // HTTP/1.0 with Connection: keep-alive, no Upgrade).
  Request& request();
  bool keep_alive() const;
  bool http10() const;

  // After failed: 400 (malformed; a target that is not a path), 405 (a method not allowed),
  // 413 (a body), 414 (request line), 431 (header bytes or count), 505 (not HTTP/1.x); and a
  // one-line text for the answer's body.
  int error_status() const;
  const std::string& error_text() const;

  // After complete: ready for the connection's next request.
  void next();
  // A byte of the current request has arrived (leading empty lines excluded): the connection
  // is not idle.
  bool started() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "GET, HEAD" for an Allow header.
std::string allow_header(const std::vector<std::string>& methods);

}  // namespace gridnode::http
