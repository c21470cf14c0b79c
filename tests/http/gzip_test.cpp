#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "gridnode/http/server.hpp"

namespace gridnode::http {
namespace {

std::string inflate_gzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);  // gzip wrapper only
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

// A Prometheus text body like the agent's: families of many series each.
std::string metrics_body(std::size_t series) {
  std::string out;
  std::mt19937 rng(7);
  for (std::size_t i = 0; i < series; ++i) {
    if (i % 20 == 0) {
      out += "# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input)\n"
             "# TYPE node_hwmon_temp_celsius gauge\n";
    }
    out += "node_hwmon_temp_celsius{chip=\"platform_coretemp_" + std::to_string(i / 20) +
           "\",sensor=\"temp" + std::to_string(i % 20) + "\"} " +
           std::to_string(rng() % 100000 / 1000.0) + "\n";
  }
  return out;
}

TEST(Gzip, RoundTrips) {
  for (const std::string& in :
       {std::string(), std::string("hello\n"), metrics_body(1900), std::string(1 << 20, 'a')}) {
    std::string out;
    ASSERT_TRUE(gzip(in, out));
    ASSERT_GE(out.size(), 18u);
    EXPECT_EQ(static_cast<unsigned char>(out[0]), 0x1f);  // gzip magic
    EXPECT_EQ(static_cast<unsigned char>(out[1]), 0x8b);
    EXPECT_EQ(inflate_gzip(out), in);
  }
  // The reused state leaves nothing behind: the same input gives the same bytes.
  std::string a, b;
  ASSERT_TRUE(gzip("same", a));
  ASSERT_TRUE(gzip(metrics_body(100), b));
  ASSERT_TRUE(gzip("same", b));
  EXPECT_EQ(a, b);
}

TEST(Gzip, EachThreadHasItsOwnState) {
  const std::string body = metrics_body(500);
  std::string other;
  std::thread t([&] { ASSERT_TRUE(gzip(body, other)); });
  std::string mine;
  ASSERT_TRUE(gzip(body, mine));
  t.join();
  EXPECT_EQ(mine, other);
}

std::size_t allocated = 0;
voidpf counting_alloc(voidpf, uInt items, uInt size) {
  allocated += static_cast<std::size_t>(items) * size;
  return std::calloc(items, size);
}
void counting_free(voidpf, voidpf p) { std::free(p); }

std::size_t deflate_state(int window_bits, int mem_level, const std::string& in, std::size_t& out_size) {
  allocated = 0;
  z_stream z{};
  z.zalloc = counting_alloc;
  z.zfree = counting_free;
  EXPECT_EQ(deflateInit2(&z, 1, Z_DEFLATED, window_bits + 16, mem_level, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out_size = out.size() - z.avail_out;
  deflateEnd(&z);
  return allocated;
}

// The figures gzip.cpp's comment gives: its parameters (12, 5) against zlib's defaults (15, 8).
TEST(Gzip, StateStaysSmallAndRatioClose) {
  const std::string body = metrics_body(1900);
  std::size_t small_out = 0, default_out = 0;
  const std::size_t small = deflate_state(12, 5, body, small_out);
  const std::size_t defaults = deflate_state(15, 8, body, default_out);
  std::string ours;
  ASSERT_TRUE(gzip(body, ours));
  EXPECT_EQ(ours.size(), small_out);  // gzip() uses these parameters
  std::printf("body %zu bytes: state %zu bytes -> %zu bytes; defaults: state %zu -> %zu\n",
              body.size(), small, small_out, defaults, default_out);
  EXPECT_LT(small, 48u * 1024);
  EXPECT_LT(static_cast<double>(small_out), 1.05 * static_cast<double>(default_out));
}

// The output grows from what `out` holds: a small start still gets the whole stream, and a
// kept buffer of enough capacity is written in place, not replaced.
TEST(Gzip, OutputGrowsAndIsReused) {
  const std::string body = metrics_body(1900);
  std::string out;
  ASSERT_TRUE(gzip(body, out));
  std::size_t size = 0;
  deflate_state(12, 5, body, size);
  EXPECT_EQ(out.size(), size);
  EXPECT_LT(out.capacity(), body.size() / 4);  // never deflateBound's input-sized buffer
  const char* data = out.data();
  ASSERT_TRUE(gzip(body, out));
  EXPECT_EQ(out.data(), data);
  EXPECT_EQ(out.size(), size);
}

TEST(Gzip, AcceptEncoding) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("gzip, deflate, br"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("identity, *;q=0.1"));
  EXPECT_TRUE(accepts_gzip(" gzip ; q=1 "));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("deflate, br"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0, *"));  // named and refused beats the wildcard
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=abc"));
  EXPECT_FALSE(accepts_gzip("gzip;q=2"));
  EXPECT_FALSE(accepts_gzip("gzipx"));
}

}  // namespace
}  // namespace gridnode::http
