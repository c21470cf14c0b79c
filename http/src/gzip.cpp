// gzip for Accept-Encoding: gzip (zlib), and the header check.
//
// The deflate state is made once per thread and reset between answers (deflateReset), so a
// scrape allocates nothing but its output. Its size is zlib's (1 << (windowBits + 2)) +
// (1 << (memLevel + 9)) plus zlib's internal state: the defaults (15, 8) hold 268,096 bytes
// (measured through zalloc, zlib 1.2.13) for the agent's whole life, 6% of its 4 MiB budget. We
// take windowBits 12 and memLevel 5: about 38 KB (tests/http/gzip_test.cpp measures both). On
// the agent's real body (44,255 bytes, the bench tree of bench/footprint.sh) it gives 5,657
// bytes, against 5,700 for (13, 6) — 71 KB of state, the previous choice — and 5,778 for the
// defaults; (11, 4) gives 6,089 and (12, 4) 5,717. A family's lines repeat its name within a few
// hundred bytes, well inside a 4 KiB window. Level 1 (deflate_fast): the body changes every
// scrape, and CPU per scrape matters more on an edge node than the last few percent of ratio.

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "gridnode/http/server.hpp"
#include "text.hpp"

namespace gridnode::http {
namespace {

constexpr int kLevel = 1;
constexpr int kWindowBits = 12;  // + 16: the gzip wrapper (RFC 1952)
constexpr int kMemLevel = 5;

class Deflater {
 public:
  Deflater() {
    ok_ = deflateInit2(&z_, kLevel, Z_DEFLATED, kWindowBits + 16, kMemLevel,
                       Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~Deflater() {
    if (ok_) {
      deflateEnd(&z_);
    }
  }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  platform::Result<void> run(std::string_view in, std::string& out) {
    if (!ok_) {
      return platform::fail(std::errc::not_enough_memory, "gzip: deflateInit2 failed");
    }
    // Into what `out` already holds, grown by half when full: a kept `out` is reused as it is,
    // and a fresh one starts at an eighth of the input (Prometheus text gzips to about 1/9).
    out.resize(std::max({out.capacity(), in.size() / 8, std::size_t{1024}}));
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    std::size_t produced = 0;
    int rc = Z_OK;
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
      z_.avail_out = static_cast<uInt>(out.size() - produced);
      rc = deflate(&z_, Z_FINISH);
      produced = out.size() - z_.avail_out;
      if (rc != Z_OK) {
        break;
      }
      if (z_.avail_out == 0) {
        out.resize(out.size() + out.size() / 2);
      }
    }
    deflateReset(&z_);
    if (rc != Z_STREAM_END) {
      out.clear();
      return platform::fail(std::errc::io_error, "gzip: deflate returned " + std::to_string(rc));
    }
    out.resize(produced);
    return {};
  }

 private:
  z_stream z_{};
  bool ok_ = false;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// RFC 9110's qvalue: "0" to "1" with up to three decimals; anything else is not a weight.
double qvalue(std::string_view params) {
  double q = 1.0;
  while (!params.empty()) {
    const auto semi = params.find(';');
    std::string_view p = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      const std::string v(trim(p.substr(2)));
      char* end = nullptr;
      q = std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size() || !(q >= 0 && q <= 1)) {
        return 0;
      }
    }
  }
  return q;
}

}  // namespace

platform::Result<void> gzip(std::string_view in, std::string& out) {
  thread_local Deflater deflater;
  return deflater.run(in, out);
}

bool accepts_gzip(std::string_view accept_encoding) {
  double gzip_q = -1, any_q = -1;
  while (!accept_encoding.empty()) {
    const auto comma = accept_encoding.find(',');
    const std::string_view item = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);
    const auto semi = item.find(';');
    const std::string_view coding = trim(item.substr(0, semi));
    const std::string_view params =
        semi == std::string_view::npos ? std::string_view{} : item.substr(semi + 1);
    if (text::iequal(coding, "gzip") || text::iequal(coding, "x-gzip")) {
      gzip_q = qvalue(params);
    } else if (coding == "*") {
      any_q = qvalue(params);
    }
  }
  return gzip_q >= 0 ? gzip_q > 0 : any_q > 0;
}

}  // namespace gridnode::http
