// Untrusted HTTP request bytes, as a connection's reads hand them to http::Server's
// RequestParser (http-parser with our limits in its callbacks). The input's first byte picks
// the read size (1 to 64 bytes), its second the limits; the rest is the byte stream, which may
// hold several pipelined requests. Properties besides "no crash, no leak, no UB":
//   - every complete request is one the handler may see: an allowed method, a path starting
//     with '/', at most max_headers headers, within the limits;
//   - the outcome does not depend on how the bytes were split into reads: the same requests
//     and a refusal (or none) whether fed whole or in pieces;
//   - every step consumes bytes or stops, so a stream of N bytes ends in at most N requests.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "gridnode/http/request_parser.hpp"

namespace {

using gridnode::http::Limits;
using gridnode::http::RequestParser;

struct Outcome {
  std::vector<std::string> requests;  // method, path, query, headers, keep-alive
  int error = 0;                      // the refusal's status, 0 when none
};

std::string describe(RequestParser& p) {
  auto& r = p.request();
  std::string d = r.method + ' ' + r.path + '?' + r.query + (p.keep_alive() ? " keep" : " close");
  for (const auto& h : r.headers) {
    d += '|' + h.name + ':' + h.value;
  }
  for (const auto& [k, v] : r.params()) {
    d += '&' + k + '=' + v;
  }
  (void)r.header("Host");
  return d;
}

Outcome run(std::string_view stream, std::size_t piece, const Limits& limits,
            const std::vector<std::string>& methods) {
  RequestParser parser(limits, methods);
  Outcome out;
  std::size_t at = 0;
  while (at < stream.size()) {
    const std::size_t end = std::min(stream.size(), at + piece);
    std::string_view chunk = stream.substr(at, end - at);
    // One read: its bytes are fed until used (a complete request leaves the rest buffered).
    while (!chunk.empty()) {
      const auto fed = parser.feed(chunk);
      if (fed.consumed > chunk.size()) {
        gridnode::fuzz::property_failed("consumed more than given");
      }
      chunk.remove_prefix(fed.consumed);
      at += fed.consumed;
      if (fed.status == RequestParser::Status::failed) {
        out.error = parser.error_status();
        if (out.error < 400 || out.error > 505 || parser.error_text().empty()) {
          gridnode::fuzz::property_failed("a refusal without a 4xx/5xx status and a text");
        }
        return out;
      }
      if (fed.status == RequestParser::Status::complete) {
        auto& r = parser.request();
        bool allowed = false;
        for (const auto& m : methods) {
          allowed = allowed || m == r.method;
        }
        if (!allowed || r.path.empty() || r.path[0] != '/' ||
            r.headers.size() > limits.max_headers) {
          gridnode::fuzz::property_failed("a request the limits should have refused");
        }
        out.requests.push_back(describe(parser));
        if (!parser.keep_alive()) {
          return out;  // the server closes after answering it
        }
        parser.next();
        if (out.requests.size() > stream.size()) {
          gridnode::fuzz::property_failed("more requests than bytes");
        }
      } else if (!chunk.empty()) {
        gridnode::fuzz::property_failed("incomplete without consuming the read");
      }
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const std::size_t piece = 1 + data[0] % 64;
  Limits limits;
  std::vector<std::string> methods{"GET", "HEAD"};
  if (data[1] % 2 == 1) {  // small limits, reached by short inputs; a method with a body
    limits.max_request_line = 64 + data[1] % 128;
    limits.max_header_bytes = 128 + data[1];
    limits.max_headers = 1 + data[1] % 8;
    limits.max_body = 32;
    methods.push_back("POST");
  }
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  const Outcome whole = run(stream, stream.size() + 1, limits, methods);
  const Outcome split = run(stream, piece, limits, methods);
  // Which refusal may differ: a request that breaks two rules (a header too many whose name
  // then holds a bad byte) meets them in another order when http-parser's callbacks, which run
  // at a token's end or a read's end, run at other places.
  if (whole.requests != split.requests || (whole.error == 0) != (split.error == 0)) {
    gridnode::fuzz::property_failed("the outcome depends on how the bytes were split");
  }
  return 0;
}
