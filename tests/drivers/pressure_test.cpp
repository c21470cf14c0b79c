#include "gridnode/drivers/pressure.hpp"

#include <gtest/gtest.h>

#include <string>

#include "../../drivers/src/pressure/pressure_parse.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::FakeTree;
using gridnode::testing::fixture_path;
using gridnode::testing::has_line;
using gridnode::testing::sweep_ok;
using gridnode::testing::sweep_text;

std::unique_ptr<Driver> driver_at(const std::string& root, bool keep_open = true) {
  PressureOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_pressure_driver(std::move(options));
}

constexpr std::string_view kSome = "some avg10=0.00 avg60=0.00 avg300=0.00 total=";
constexpr std::string_view kFull = "full avg10=0.00 avg60=0.00 avg300=0.00 total=";

TEST(PressureParse, TotalsOfBothLines) {
  auto t = pressure::parse_totals(
      "some avg10=1.52 avg60=0.88 avg300=0.42 total=183456021\n"
      "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->some, 183456021u);
  ASSERT_TRUE(t->full);
  EXPECT_EQ(*t->full, 7u);
}

TEST(PressureParse, EdgeCases) {
  using pressure::parse_totals;
  // cpu before 5.13: no "full".
  auto old = parse_totals(std::string(kSome) + "12\n");
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->full);
  // No trailing newline; the largest total.
  auto max = parse_totals(std::string(kSome) + "18446744073709551615");
  ASSERT_TRUE(max);
  EXPECT_EQ(max->some, 18446744073709551615u);
  // Lines of another kind are ignored (a future one), blank lines too.
  EXPECT_TRUE(parse_totals("\nwhatever 1 2 3\n" + std::string(kSome) + "1\n"));
  // Without "some", or with a line that does not have the four fields in order: malformed.
  EXPECT_FALSE(parse_totals(std::string(kFull) + "1\n"));
  EXPECT_FALSE(parse_totals(""));
  EXPECT_FALSE(parse_totals("some avg10=0.00 avg60=0.00 total=1\n"));
  EXPECT_FALSE(parse_totals("some avg60=0.00 avg10=0.00 avg300=0.00 total=1\n"));
  EXPECT_FALSE(parse_totals("some avg10=x avg60=0.00 avg300=0.00 total=1\n"));
  EXPECT_FALSE(parse_totals(std::string(kSome) + "\n"));
  EXPECT_FALSE(parse_totals(std::string(kSome) + "-1\n"));
  EXPECT_FALSE(parse_totals(std::string(kSome) + "18446744073709551616\n"));
  EXPECT_FALSE(parse_totals(std::string(kSome) + "1 extra\n"));
  EXPECT_FALSE(parse_totals(std::string(kSome) + "1\n" + std::string(kFull) + "x\n"));
}

TEST(PressureDriver, Linux61FixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("pressure/linux61"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  // cpu some, io some+full, memory some+full; cpu's "full" and irq are not node_exporter 1.5's.
  EXPECT_EQ(out.readings.size(), 5u);
  expect_golden(sweep_text(out), fixture_path("pressure/linux61/expected.prom"));
}

TEST(PressureDriver, Linux510FixtureMatchesGoldenExactly) {
  auto driver = driver_at(fixture_path("pressure/linux510"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  std::string text = sweep_text(out);
  // Totals beyond 2^53 microseconds stay exact (no float on the way).
  EXPECT_TRUE(has_line(text, "node_pressure_cpu_waiting_seconds_total 18446744073709.551615"))
      << text;
  EXPECT_TRUE(has_line(text, "node_pressure_memory_waiting_seconds_total 9007199254.740993"))
      << text;
  expect_golden(text, fixture_path("pressure/linux510/expected.prom"));
}

TEST(PressureDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("pressure/linux61"));
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.catalog->families.size(), 5u);
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::counter) << f.name;
    EXPECT_EQ(f.scale, (Scale{1, -6})) << f.name;
    EXPECT_EQ(f.unit, "s");
  }
  EXPECT_EQ(out.catalog->families[0].name, "node_pressure_cpu_waiting_seconds_total");
  EXPECT_EQ(out.catalog->families[0].help,
            "Total time in seconds that processes have waited for CPU time");
  EXPECT_EQ(out.catalog->families[2].name, "node_pressure_io_stalled_seconds_total");
  EXPECT_EQ(out.catalog->families[2].help,
            "Total time in seconds no process could make progress due to IO congestion");
  EXPECT_EQ(out.catalog->families[4].help,
            "Total time in seconds no process could make progress due to memory congestion");
}

TEST(PressureDriver, AbsentIsNoSuchFileAndAppearsLater) {
  FakeTree tree;
  tree.mkdir("proc");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  tree.write("proc/pressure/cpu", std::string(kSome) + "2500000\n");
  Sweep later = sweep_ok(*driver);
  EXPECT_EQ(sweep_text(later), "node_pressure_cpu_waiting_seconds_total 2.5\n");
}

TEST(PressureDriver, MalformedFileIsSkippedAndCountedEverySweep) {
  FakeTree tree;
  tree.write("proc/pressure/cpu", std::string(kSome) + "1000000\n");
  tree.write("proc/pressure/io", "garbage\n");
  // memory without its "full" line: "some" is reported, the missing one counted.
  tree.write("proc/pressure/memory", std::string(kSome) + "3000000\n");
  auto driver = driver_at(tree.root());
  for (int i = 0; i < 2; ++i) {
    Sweep out = sweep_ok(*driver);
    EXPECT_EQ(out.errors, 2u);
    EXPECT_EQ(sweep_text(out),
              "node_pressure_cpu_waiting_seconds_total 1\n"
              "node_pressure_memory_waiting_seconds_total 3\n");
  }
}

TEST(PressureDriver, KeptOpenFilesSeeNewTotals) {
  FakeTree tree;
  tree.write("proc/pressure/cpu", std::string(kSome) + "1\n");
  auto driver = driver_at(tree.root());
  EXPECT_EQ(sweep_text(sweep_ok(*driver)), "node_pressure_cpu_waiting_seconds_total 0.000001\n");
  tree.write("proc/pressure/cpu", std::string(kSome) + "1500000\n");
  EXPECT_EQ(sweep_text(sweep_ok(*driver)), "node_pressure_cpu_waiting_seconds_total 1.5\n");
}

TEST(PressureDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("pressure/linux61"));
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
  EXPECT_EQ(s.readings.size(), 5u);
}

}  // namespace
}  // namespace gridnode::drivers
