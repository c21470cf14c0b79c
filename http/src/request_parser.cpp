#include "gridnode/http/request_parser.hpp"

#include <http_parser.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "text.hpp"

namespace gridnode::http {

struct RequestParser::Impl {
  Impl(const Limits& l, std::vector<std::string> m) : limits(l), methods(std::move(m)) {
    // http-parser's own bound on the request line and headers together (a process-wide value
    // in 2.9; its default is 80 KiB): above ours, so ours answer first with the precise status,
    // and it still bounds what ours do not count (whitespace, line ends).
    const std::size_t bound = limits.max_request_line + limits.max_header_bytes +
                              4 * limits.max_headers + 1024;
    http_parser_set_max_header_size(static_cast<std::uint32_t>(
        std::min<std::size_t>(bound, std::numeric_limits<std::uint32_t>::max())));
    http_parser_settings_init(&settings);
    settings.on_message_begin = &Impl::on_message_begin;
    settings.on_url = &Impl::on_url;
    settings.on_header_field = &Impl::on_header_field;
    settings.on_header_value = &Impl::on_header_value;
    settings.on_headers_complete = &Impl::on_headers_complete;
    settings.on_body = &Impl::on_body;
    settings.on_message_complete = &Impl::on_message_complete;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = this;
  }

  static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }

  int refuse(int status, std::string text) {
    error_status = status;
    error_text = std::move(text);
    return -1;
  }

  static int on_message_begin(http_parser* p) {
    of(p).started = true;
    return 0;
  }

  static int on_url(http_parser* p, const char* at, std::size_t n) {
    Impl& s = of(p);
    s.url.append(at, n);
    const std::size_t line =
        std::strlen(http_method_str(static_cast<http_method>(p->method))) + s.url.size() + 10;
    if (line > s.limits.max_request_line) {
      return s.refuse(414, "request line longer than " +
                               std::to_string(s.limits.max_request_line) + " bytes");
    }
    return 0;
  }

  int header_bytes(std::size_t n) {
    header_total += n;
    if (header_total > limits.max_header_bytes) {
      return refuse(431, "headers longer than " + std::to_string(limits.max_header_bytes) +
                             " bytes");
    }
    return 0;
  }

  static int on_header_field(http_parser* p, const char* at, std::size_t n) {
    Impl& s = of(p);
    auto& headers = s.request.headers;
    if (!s.in_field) {  // a new header (the first, or after a value)
      if (headers.size() >= s.limits.max_headers) {
        return s.refuse(431, "more than " + std::to_string(s.limits.max_headers) + " headers");
      }
      headers.emplace_back();
      s.in_field = true;
      if (s.header_bytes(4) != 0) {  // ": " and the line end
        return -1;
      }
    }
    headers.back().name.append(at, n);
    return s.header_bytes(n);
  }

  static int on_header_value(http_parser* p, const char* at, std::size_t n) {
    Impl& s = of(p);
    s.in_field = false;
    if (s.request.headers.empty()) {
      return -1;  // http-parser calls the field first; never trust it to
    }
    s.request.headers.back().value.append(at, n);
    return s.header_bytes(n);
  }

  static int on_headers_complete(http_parser* p) {
    Impl& s = of(p);
    const std::string method = http_method_str(static_cast<http_method>(p->method));
    if (std::find(s.methods.begin(), s.methods.end(), method) == s.methods.end()) {
      return s.refuse(405, "method " + method + " not allowed (" + allow_header(s.methods) + ")");
    }
    if (p->http_major != 1) {
      return s.refuse(505, "HTTP/" + std::to_string(p->http_major) + "." +
                               std::to_string(p->http_minor) + " not supported");
    }
    if (s.url.empty() || s.url[0] != '/') {
      return s.refuse(400, "bad request: the target must be a path (origin-form)");
    }
    const bool chunked = (p->flags & F_CHUNKED) != 0;
    const bool sized = p->content_length != std::numeric_limits<std::uint64_t>::max();
    if ((chunked && s.limits.max_body == 0) || (sized && p->content_length > s.limits.max_body)) {
      return s.refuse(413, "request body not accepted (at most " +
                               std::to_string(s.limits.max_body) + " bytes)");
    }
    const auto qm = s.url.find('?');
    std::string_view path = std::string_view(s.url).substr(0, qm);
    path = path.substr(0, path.find('#'));
    s.request.method = method;
    s.request.path = text::percent_decode(path, false);
    if (qm != std::string::npos) {
      std::string_view query = std::string_view(s.url).substr(qm + 1);
      s.request.query = std::string(query.substr(0, query.find('#')));
    }
    return 0;
  }

  static int on_body(http_parser* p, const char*, std::size_t n) {
    Impl& s = of(p);
    s.body += n;  // counted, not kept: no handler reads a body
    if (s.body > s.limits.max_body) {
      return s.refuse(413, "request body longer than " + std::to_string(s.limits.max_body) +
                               " bytes");
    }
    return 0;
  }

  static int on_message_complete(http_parser* p) {
    Impl& s = of(p);
    s.keep_alive = http_should_keep_alive(p) != 0 && p->upgrade == 0;
    s.http10 = p->http_major == 1 && p->http_minor == 0;
    http_parser_pause(p, 1);  // one request at a time: pipelined bytes wait for next()
    s.done = true;
    return 0;
  }

  void reset() {
    request = Request{};
    url.clear();
    header_total = 0;
    body = 0;
    in_field = false;
    started = false;
    done = false;
  }

  Limits limits;
  std::vector<std::string> methods;
  http_parser_settings settings{};
  http_parser parser{};
  Request request;
  std::string url;
  std::size_t header_total = 0;
  std::uint64_t body = 0;
  bool in_field = false;
  bool started = false;
  bool done = false;
  bool failed = false;
  bool keep_alive = false;
  bool http10 = false;
  int error_status = 0;
  std::string error_text;
};

RequestParser::RequestParser(const Limits& limits, std::vector<std::string> methods)
    : impl_(std::make_unique<Impl>(limits, std::move(methods))) {}

RequestParser::~RequestParser() = default;

RequestParser::Fed RequestParser::feed(std::string_view data) {
  Impl& s = *impl_;
  if (s.failed) {
    return {Status::failed, 0};
  }
  if (s.done) {
    return {Status::complete, 0};
  }
  if (data.empty()) {
    return {Status::incomplete, 0};  // http-parser reads an empty buffer as the end of input
  }
  const std::size_t n = http_parser_execute(&s.parser, &s.settings, data.data(), data.size());
  const auto err = static_cast<http_errno>(s.parser.http_errno);
  if (s.done && (err == HPE_OK || err == HPE_PAUSED)) {
    return {Status::complete, n};
  }
  if (err == HPE_OK && n == data.size() && s.parser.upgrade == 0) {
    return {Status::incomplete, n};
  }
  s.failed = true;
  if (s.error_status == 0) {
    if (err == HPE_HEADER_OVERFLOW) {
      s.error_status = 431;
      s.error_text = "request line and headers too long";
    } else {
      s.error_status = 400;
      s.error_text = std::string("bad request: ") +
                     (err == HPE_OK ? "unexpected bytes" : http_errno_description(err));
    }
  }
  return {Status::failed, n};
}

Request& RequestParser::request() { return impl_->request; }
bool RequestParser::keep_alive() const { return impl_->keep_alive; }
bool RequestParser::http10() const { return impl_->http10; }
int RequestParser::error_status() const { return impl_->error_status; }
const std::string& RequestParser::error_text() const { return impl_->error_text; }
bool RequestParser::started() const { return impl_->started; }

void RequestParser::next() {
  impl_->reset();
  http_parser_pause(&impl_->parser, 0);
}

std::string allow_header(const std::vector<std::string>& methods) {
  std::string out;
  for (const std::string& m : methods) {
    if (!out.empty()) {
      out += ", ";
    }
    out += m;
  }
  return out;
}

}  // namespace gridnode::http
