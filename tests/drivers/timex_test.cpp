#include "gridnode/drivers/timex.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "../../drivers/src/timex/timex_convert.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"

namespace gridnode::drivers {
namespace {

using gridnode::testing::has_line;
using gridnode::testing::sweep_ok;
using gridnode::testing::sweep_text;

// The seam: what the fake adjtimex answers.
struct ::timex g_fake {};
int g_state = TIME_OK;
int g_errno = 0;
unsigned g_modes_seen = 99;

int fake_adjtimex(struct ::timex* tx) {
  g_modes_seen = tx->modes;
  if (g_errno != 0) {
    errno = g_errno;
    return -1;
  }
  *tx = g_fake;
  return g_state;
}

std::unique_ptr<Driver> fake_driver() { return make_timex_driver({fake_adjtimex}); }

// A clock synchronised by chrony: PLL, nanosecond resolution, values as adjtimex(2) gives them.
void chrony_synced() {
  g_fake = {};
  g_fake.offset = -12345;  // ns (STA_NANO)
  g_fake.freq = -1234567;  // -18.838 ppm
  g_fake.maxerror = 16500;
  g_fake.esterror = 120;
  g_fake.status = STA_PLL | STA_NANO;
  g_fake.constant = 7;
  g_fake.precision = 1;
  g_fake.tolerance = 32768000;
  g_fake.tick = 10000;
  g_fake.tai = 37;
  g_state = TIME_OK;
  g_errno = 0;
}

TEST(TimexConvert, ChronySyncedClock) {
  chrony_synced();
  auto driver = fake_driver();
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(g_modes_seen, 0u);  // a read, never a set
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size(), 17u);
  EXPECT_EQ(sweep_text(out),
            "node_timex_estimated_error_seconds 0.00012\n"
            "node_timex_frequency_adjustment_ratio 0.999981162002563477\n"
            "node_timex_loop_time_constant 7\n"
            "node_timex_maxerror_seconds 0.0165\n"
            "node_timex_offset_seconds -0.000012345\n"
            "node_timex_pps_calibration_total 0\n"
            "node_timex_pps_error_total 0\n"
            "node_timex_pps_frequency_hertz 0\n"
            "node_timex_pps_jitter_seconds 0\n"
            "node_timex_pps_jitter_total 0\n"
            "node_timex_pps_shift_seconds 0\n"
            "node_timex_pps_stability_exceeded_total 0\n"
            "node_timex_pps_stability_hertz 0\n"
            "node_timex_status 8193\n"
            "node_timex_sync_status 1\n"
            "node_timex_tai_offset_seconds 37\n"
            "node_timex_tick_seconds 0.01\n");
}

TEST(TimexConvert, MicrosecondResolutionAndPps) {
  chrony_synced();
  g_fake.status = STA_PLL | STA_PPSFREQ | STA_PPSSIGNAL;  // no STA_NANO: offset, jitter in us
  g_fake.offset = 250;
  g_fake.jitter = 3;
  g_fake.ppsfreq = 65536;  // 1 ppm = 1e-6
  g_fake.stabil = -1;      // one 2^-16 ppm: 1.52587890625e-11, to 1e-18
  g_fake.shift = 4;
  g_fake.jitcnt = 11;
  g_fake.calcnt = 22;
  g_fake.errcnt = 33;
  g_fake.stbcnt = 44;
  g_fake.freq = 32768000;  // the kernel's +500 ppm limit
  auto driver = fake_driver();
  std::string text = sweep_text(sweep_ok(*driver));
  EXPECT_TRUE(has_line(text, "node_timex_offset_seconds 0.00025")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_jitter_seconds 0.000003")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_frequency_hertz 0.000001")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_stability_hertz -0.000000000015258789")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_frequency_adjustment_ratio 1.0005")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_shift_seconds 4")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_jitter_total 11")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_calibration_total 22")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_error_total 33")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_pps_stability_exceeded_total 44")) << text;
}

TEST(TimexConvert, RatioMatchesNodeExportersFloat) {
  for (long freq : {0L, 1L, -1L, 65536L, -1234567L, 32768000L, -32768000L, 999999L}) {
    struct ::timex tx {};
    tx.freq = freq;
    auto values = timex::values(TIME_OK, tx);
    double ours = to_double(values[2], timex::families()[2].scale);
    double theirs = 1 + static_cast<double>(freq) / (1000000.0 * 65536.0);
    EXPECT_NEAR(ours, theirs, 1e-15) << freq;
  }
}

TEST(TimexConvert, UnsynchronisedClockIsSyncStatusZero) {
  chrony_synced();
  g_state = TIME_ERROR;
  g_fake.status = STA_UNSYNC;
  g_fake.maxerror = 16000000;  // NTP_PHASE_LIMIT: 16 s
  auto driver = fake_driver();
  std::string text = sweep_text(sweep_ok(*driver));
  EXPECT_TRUE(has_line(text, "node_timex_sync_status 0")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_status 64")) << text;
  EXPECT_TRUE(has_line(text, "node_timex_maxerror_seconds 16")) << text;
  // A leap second pending (TIME_INS) is synchronised.
  g_state = TIME_INS;
  EXPECT_TRUE(has_line(sweep_text(sweep_ok(*driver)), "node_timex_sync_status 1"));
}

// Refused by the service's filter: absent (not down), with the reason, and no values.
TEST(TimexDriver, RefusedCallIsAClearErrorNotValues) {
  chrony_synced();
  g_errno = EPERM;  // a seccomp filter (ProtectClock=yes) answers EPERM
  auto driver = fake_driver();
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  EXPECT_NE(r.error().message().find("ProtectClock"), std::string::npos) << r.error().message();
  EXPECT_TRUE(out.readings.empty());
  // Another failure says which.
  g_errno = EINVAL;
  auto other = driver->sweep(out);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, std::errc::invalid_argument);
  EXPECT_NE(other.error().message().find("adjtimex"), std::string::npos);
  // And it recovers.
  g_errno = 0;
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.readings.size(), 17u);
}

TEST(TimexDriver, FamiliesMatchNodeExporter) {
  chrony_synced();
  auto driver = fake_driver();
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.catalog->families.size(), 17u);
  std::size_t counters = 0;
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.name.rfind("node_timex_", 0), 0u) << f.name;
    EXPECT_FALSE(f.help.empty());
    // What the report's catalog carries (protocol/src/catalog.cpp: |exp10| <= 18).
    EXPECT_GE(f.scale.exp10, -18) << f.name;
    EXPECT_LE(f.scale.exp10, 18) << f.name;
    counters += f.type == MetricType::counter ? 1 : 0;
  }
  EXPECT_EQ(counters, 4u);
  EXPECT_EQ(out.catalog->families[0].help,
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).");
  EXPECT_EQ(out.catalog->families[1].help,
            "Time offset in between local system and reference clock.");
}

// The real system call on this host, through the production path (no seam).
TEST(TimexDriver, RealAdjtimexOnThisHost) {
  auto driver = make_timex_driver();
  Sweep out;
  auto r = driver->sweep(out);
  if (!r && r.error().code == std::errc::no_such_file_or_directory) {
    GTEST_SKIP() << "adjtimex refused here: " << r.error().message();
  }
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(out.readings.size(), 17u);
  auto value = [&](std::string_view name) {
    for (const auto& reading : out.readings) {
      const Family& f = out.catalog->family_of(reading.series);
      if (f.name == name) {
        return to_double(reading.value, f.scale);
      }
    }
    ADD_FAILURE() << name << " missing";
    return std::nan("");
  };
  // What any Linux clock satisfies: a tick of 1/HZ-ish, a frequency within the kernel's
  // +-500 ppm, a sync status of 0 or 1, errors within NTP_PHASE_LIMIT.
  EXPECT_GT(value("node_timex_tick_seconds"), 0.0009);
  EXPECT_LT(value("node_timex_tick_seconds"), 0.0111);
  EXPECT_NEAR(value("node_timex_frequency_adjustment_ratio"), 1.0, 0.0005001);
  double sync = value("node_timex_sync_status");
  EXPECT_TRUE(sync == 0 || sync == 1);
  EXPECT_GE(value("node_timex_maxerror_seconds"), 0);
  EXPECT_LE(value("node_timex_maxerror_seconds"), 16.0);
  EXPECT_GE(value("node_timex_estimated_error_seconds"), 0);
  EXPECT_GE(value("node_timex_tai_offset_seconds"), 0);
  // sync_status agrees with the status bits: TIME_ERROR whenever STA_UNSYNC is set.
  auto status = static_cast<long>(value("node_timex_status"));
  if ((status & STA_UNSYNC) != 0) {
    EXPECT_EQ(sync, 0);
  }
}

TEST(TimexDriver, SteadySweepAllocatesNothing) {
  chrony_synced();
  auto d = fake_driver();
  Sweep s = sweep_ok(*d);
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  s.reset();
  testing::AllocationCounter allocations;
  allocations.start();
  auto r = d->sweep(s);
  std::size_t allocated = allocations.stop();
  ASSERT_TRUE(r);
  EXPECT_EQ(allocated, 0u);
  EXPECT_EQ(s.readings.size(), 17u);
}

}  // namespace
}  // namespace gridnode::drivers
