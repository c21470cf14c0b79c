#include "gridnode/drivers/infiniband.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "../../drivers/src/infiniband/infiniband_parse.hpp"
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
  InfinibandOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return make_infiniband_driver(std::move(options));
}

void add_port(FakeTree& tree, std::string_view device, int port) {
  std::string dir = "sys/class/infiniband/" + std::string(device);
  tree.write(dir + "/board_id", "MT_0000000223\n");
  tree.write(dir + "/fw_ver", "20.31.1014\n");
  tree.write(dir + "/hca_type", "MT4123\n");
  std::string p = dir + "/ports/" + std::to_string(port);
  tree.write(p + "/state", "4: ACTIVE\n");
  tree.write(p + "/phys_state", "5: LinkUp\n");
  tree.write(p + "/rate", "200 Gb/sec (4X HDR)\n");
  tree.write(p + "/counters/link_downed", "0\n");
  tree.write(p + "/counters/port_rcv_data", "100\n");
}

TEST(InfinibandParse, StateIdIsTheNumberBeforeTheColon) {
  using infiniband::parse_state_id;
  EXPECT_EQ(parse_state_id("4: ACTIVE\n").value(), 4u);
  EXPECT_EQ(parse_state_id("5: LinkUp").value(), 5u);
  EXPECT_EQ(parse_state_id(" 1 :DOWN").value(), 1u);
  EXPECT_FALSE(parse_state_id("ACTIVE"));
  EXPECT_FALSE(parse_state_id("4: ACTIVE: really"));  // procfs wants exactly two parts
  EXPECT_FALSE(parse_state_id(": ACTIVE"));
  EXPECT_FALSE(parse_state_id("-1: ACTIVE"));
  EXPECT_EQ(parse_state_id("4294967296: X").error().code, std::errc::result_out_of_range);
}

TEST(InfinibandParse, RateIsExactBytesPerSecond) {
  using infiniband::parse_rate;
  EXPECT_EQ(parse_rate("100 Gb/sec (4X EDR)\n").value(), 12500000000u);
  EXPECT_EQ(parse_rate("2.5 Gb/sec (1X SDR)").value(), 312500000u);
  EXPECT_EQ(parse_rate("10 Gb/sec (4X)").value(), 1250000000u);
  EXPECT_EQ(parse_rate("400 Gb/sec (4X NDR)").value(), 50000000000u);
  EXPECT_EQ(parse_rate("0.000001 Gb/sec").value(), 125u);
  EXPECT_FALSE(parse_rate("100"));          // no unit: procfs cannot split it
  EXPECT_FALSE(parse_rate(" 100 Gb/sec"));  // empty number before the first space
  EXPECT_FALSE(parse_rate("fast Gb/sec"));
  EXPECT_FALSE(parse_rate("1.0000001 Gb/sec"));  // not exact in bytes
  EXPECT_FALSE(parse_rate("1.2.3 Gb/sec"));
  EXPECT_EQ(parse_rate("147573952590 Gb/sec").error().code, std::errc::result_out_of_range);
  EXPECT_EQ(parse_rate("147573952589676412928 Gb/sec").error().code,
            std::errc::result_out_of_range);
}

TEST(InfinibandParse, RandomTextIsRefusedOrParsedNeverAccepted) {
  std::mt19937 rng(42);  // fixed: the same strings every run
  const std::string alphabet = "0123456789.: Gb/sec()X-+eE\n\t";
  for (int i = 0; i < 20000; ++i) {
    std::string text(rng() % 24, ' ');
    for (auto& c : text) {
      c = rng() % 8 == 0 ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
    }
    auto rate = infiniband::parse_rate(text);
    if (rate) {
      // Only "<digits>[.<up to 6 digits>] …" parses, and then exactly.
      std::string number = text.substr(0, text.find(' '));
      ASSERT_FALSE(number.empty()) << text;
      ASSERT_EQ(number.find_first_not_of("0123456789."), std::string::npos) << text;
    }
    auto state = infiniband::parse_state_id(text);
    if (state) {
      ASSERT_EQ(std::count(text.begin(), text.end(), ':'), 1) << text;
    }
  }
}

TEST(InfinibandDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("infiniband/basic"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  std::string text = sweep_text(out);
  // The data counters count 4-octet words; the HCA without hca_type has it empty; i40iw's
  // "N/A (no PMA)" counters are not exported.
  EXPECT_TRUE(
      has_line(text,
               "node_infiniband_port_data_received_bytes_total{device=\"mlx5_0\",port=\"1\"} "
               "4691449851752"));
  EXPECT_TRUE(has_line(text,
                       "node_infiniband_info{board_id=\"\",device=\"rxe0\",firmware_version="
                       "\"0.0.0\",hca_type=\"\"} 1"));
  EXPECT_TRUE(has_line(
      text, "node_infiniband_rate_bytes_per_second{device=\"mlx4_0\",port=\"2\"} 312500000"));
  EXPECT_EQ(text.find("node_infiniband_link_downed_total{device=\"i40iw0\""), std::string::npos);
  EXPECT_TRUE(has_line(text, "node_infiniband_state_id{device=\"i40iw0\",port=\"1\"} 4"));
  expect_golden(text, fixture_path("infiniband/basic/expected.prom"));
}

TEST(InfinibandDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("infiniband/basic"));
  Sweep out = sweep_ok(*driver);
  for (const auto& f : out.catalog->families) {
    ASSERT_EQ(f.name.rfind("node_infiniband_", 0), 0u) << f.name;
    bool total = f.name.ends_with("_total");
    EXPECT_EQ(f.type, total ? MetricType::counter : MetricType::gauge) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    bool data = f.name.find("_data_") != std::string::npos;
    EXPECT_EQ(f.scale, (Scale{data ? 4u : 1u, 0})) << f.name;
  }
  auto help = [&](std::string_view name) {
    for (const auto& f : out.catalog->families) {
      if (f.name == name) {
        return f.help;
      }
    }
    return std::string("(missing)");
  };
  EXPECT_EQ(help("node_infiniband_state_id"),
            "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, "
            "5: act defer)");
  EXPECT_EQ(help("node_infiniband_rate_bytes_per_second"), "Maximum signal transfer rate");
  EXPECT_EQ(help("node_infiniband_legacy_packets_transmitted_total"),
            "Number of data packets received on all links");
  EXPECT_EQ(help("node_infiniband_vl15_dropped_total"),
            "Number of incoming VL15 packets dropped due to resource limitations.");
}

TEST(InfinibandDriver, MalformedFixtureSkipsOnlyTheBadParts) {
  auto driver = driver_at(fixture_path("infiniband/malformed"));
  Sweep out = sweep_ok(*driver);
  // mlx5_1 without fw_ver (at discovery); mlx5_0's state, rate, link_downed, symbol_error.
  EXPECT_EQ(out.errors, 1u + 4u);
  std::string text = sweep_text(out);
  EXPECT_EQ(text.find("mlx5_1"), std::string::npos);
  EXPECT_TRUE(has_line(text, "node_infiniband_physical_state_id{device=\"mlx5_0\",port=\"1\"} 5"));
  expect_golden(text, fixture_path("infiniband/malformed/expected.prom"));
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 4u);
  EXPECT_EQ(sweep_text(again), text);
}

TEST(InfinibandDriver, OnlyRegularKnownCounterFilesAreRead) {
  FakeTree tree;
  add_port(tree, "mlx5_0", 1);
  std::string counters = "sys/class/infiniband/mlx5_0/ports/1/counters";
  tree.write(counters + "/some_new_counter", "7\n");  // unknown to node_exporter 1.5
  tree.mkdir(counters + "/symbol_error");             // a directory, not a counter
  tree.write("elsewhere/port_xmit_wait", "9\n");
  tree.symlink("../../../../../../../elsewhere/port_xmit_wait", counters + "/port_xmit_wait");
  tree.mkdir("sys/class/infiniband/mlx5_0/ports/lo");  // not a port number
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 1u);  // the "lo" port
  std::string text = sweep_text(out);
  EXPECT_EQ(text.find("symbol_error"), std::string::npos);
  EXPECT_EQ(text.find("transmit_wait"), std::string::npos);
  EXPECT_EQ(text.find("some_new"), std::string::npos);
  // info + state, phys_state, rate + link_downed, port_rcv_data.
  EXPECT_EQ(out.readings.size(), 6u);
}

TEST(InfinibandDriver, PortWithoutCountersStillReportsItsState) {
  FakeTree tree;
  add_port(tree, "mlx5_0", 1);
  tree.remove("sys/class/infiniband/mlx5_0/ports/1/counters");
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 1u);
  EXPECT_EQ(out.readings.size(), 4u);
}

TEST(InfinibandDriver, LinkGoingDownIsSeenOnTheNextSweep) {
  FakeTree tree;
  add_port(tree, "mlx5_0", 1);
  auto driver = driver_at(tree.root());
  Sweep up = sweep_ok(*driver);
  EXPECT_TRUE(has_line(sweep_text(up), "node_infiniband_state_id{device=\"mlx5_0\",port=\"1\"} 4"));
  tree.write("sys/class/infiniband/mlx5_0/ports/1/state", "1: DOWN\n");
  tree.write("sys/class/infiniband/mlx5_0/ports/1/phys_state", "3: Disabled\n");
  tree.write("sys/class/infiniband/mlx5_0/ports/1/rate", "10 Gb/sec (4X SDR)\n");
  Sweep down = sweep_ok(*driver);
  std::string text = sweep_text(down);
  EXPECT_TRUE(has_line(text, "node_infiniband_state_id{device=\"mlx5_0\",port=\"1\"} 1"));
  EXPECT_TRUE(has_line(text, "node_infiniband_physical_state_id{device=\"mlx5_0\",port=\"1\"} 3"));
  EXPECT_TRUE(has_line(
      text, "node_infiniband_rate_bytes_per_second{device=\"mlx5_0\",port=\"1\"} 1250000000"));
  EXPECT_EQ(down.catalog, up.catalog);
}

TEST(InfinibandDriver, AbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/class");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
}

TEST(InfinibandDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("infiniband/basic"));
  Sweep s = sweep_ok(*d);
  std::size_t n = s.readings.size();
  ASSERT_GT(n, 50u);
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  s.reset();
  testing::AllocationCounter allocations;
  allocations.start();
  auto r = d->sweep(s);
  std::size_t allocated = allocations.stop();
  ASSERT_TRUE(r);
  EXPECT_EQ(allocated, 0u);
  EXPECT_EQ(s.readings.size(), n);
}

}  // namespace
}  // namespace gridnode::drivers
