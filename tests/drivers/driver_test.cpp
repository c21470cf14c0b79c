#include "gridnode/drivers/driver.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>

#include "alloc_counter.hpp"

namespace gridnode::drivers {
namespace {

std::string fmt_s(std::int64_t v, Scale s) { return format_value(Value::of_signed(v), s); }
std::string fmt_u(std::uint64_t v, Scale s) { return format_value(Value::of_unsigned(v), s); }

TEST(FormatValue, PlacesTheDecimalPointExactly) {
  EXPECT_EQ(fmt_s(41500, {1, -3}), "41.5");
  EXPECT_EQ(fmt_s(41000, {1, -3}), "41");
  EXPECT_EQ(fmt_s(-250, {1, -3}), "-0.25");
  EXPECT_EQ(fmt_s(5, {1, -3}), "0.005");
  EXPECT_EQ(fmt_s(0, {1, -6}), "0");
  EXPECT_EQ(fmt_s(-5, {1, 0}), "-5");
  EXPECT_EQ(fmt_u(12, {1024, 0}), "12288");
  EXPECT_EQ(fmt_u(7, {1, 2}), "700");
  EXPECT_EQ(fmt_u(123456, {1, -2}), "1234.56");
}

TEST(FormatValue, ExtremesAreExact) {
  EXPECT_EQ(fmt_u(std::numeric_limits<std::uint64_t>::max(), {1, -6}), "18446744073709.551615");
  EXPECT_EQ(fmt_s(std::numeric_limits<std::int64_t>::min(), {1, 0}), "-9223372036854775808");
  EXPECT_EQ(fmt_u(std::numeric_limits<std::uint64_t>::max(), {512, 0}),
            "9444732965739290426880");
}

TEST(ToDouble, MatchesDivision) {
  EXPECT_DOUBLE_EQ(to_double(Value::of_signed(41500), {1, -3}), 41.5);
  EXPECT_DOUBLE_EQ(to_double(Value::of_unsigned(3), {1024, 0}), 3072.0);
}

TEST(Catalog, AddFamilyDeduplicatesAndSeriesSortsLabels) {
  Catalog c;
  auto f = c.add_family({"node_x", "help", MetricType::gauge, {}, ""});
  EXPECT_EQ(c.add_family({"node_x", "other", MetricType::gauge, {}, ""}), f);
  auto s = c.add_series(f, {{"sensor", "temp1"}, {"chip", "c"}});
  EXPECT_EQ(c.series[s].labels.front().first, "chip");
}

// The counter the drivers' "steady sweep allocates nothing" tests rely on does see allocations.
TEST(AllocationCounter, SeesAnAllocation) {
  testing::AllocationCounter counter;
  counter.start();
  auto s = std::make_unique<std::string>(100, 'x');
  std::size_t n = counter.stop();
  EXPECT_GE(n, 1u);
  EXPECT_EQ(s->size(), 100u);
}

}  // namespace
}  // namespace gridnode::drivers
