#include "gridnode/agent/exposition.hpp"

#include <gtest/gtest.h>

#include "fake_driver.hpp"

namespace gridnode::agent {
namespace {

using gridnode::testing::FakeDriver;
using namespace std::chrono_literals;

// A driver whose label values need escaping, and two families interleaved in catalog order.
class AwkwardDriver final : public drivers::Driver {
 public:
  AwkwardDriver() {
    auto c = std::make_shared<drivers::Catalog>();
    auto a = c->add_family({"node_a_celsius", "A\\B\nC", drivers::MetricType::gauge, {1, -3}, "°C"});
    auto b = c->add_family({"node_b_total", "B.", drivers::MetricType::counter, {}, ""});
    c->add_series(a, {{"chip", "quote\"back\\slash\nnl"}});
    c->add_series(b, {{"chip", "x"}});
    c->add_series(a, {{"chip", "y"}});
    catalog_ = c;
  }
  std::string_view name() const override { return "awkward"; }
  platform::Result<void> sweep(drivers::Sweep& out) override {
    out.catalog = catalog_;
    out.readings = {{0, drivers::Value::of_signed(-1500)},
                    {1, drivers::Value::of_unsigned(18446744073709551615ull)},
                    {2, drivers::Value::of_signed(41000)}};
    return {};
  }

 private:
  std::shared_ptr<const drivers::Catalog> catalog_;
};

std::unique_ptr<Sampler> swept(asio::io_context& io,
                               std::vector<std::unique_ptr<drivers::Driver>> ds) {
  auto s = std::make_unique<Sampler>(io, std::move(ds), Sampler::Options{1s, 1s});
  bool done = false;
  s->run_once([&] { done = true; });
  while (!done) {
    io.run_one_for(1s);
  }
  return s;
}

TEST(Exposition, GroupsFamiliesEscapesAndKeepsValuesExact) {
  asio::io_context io{1};
  std::vector<std::unique_ptr<drivers::Driver>> ds;
  ds.push_back(std::make_unique<AwkwardDriver>());
  auto sampler = swept(io, std::move(ds));
  Exposition e;
  std::string text;
  e.render_prometheus(*sampler, text);
  EXPECT_NE(text.find("# HELP node_a_celsius A\\\\B\\nC\n# TYPE node_a_celsius gauge\n"
                      "node_a_celsius{chip=\"quote\\\"back\\\\slash\\nnl\"} -1.5\n"
                      "node_a_celsius{chip=\"y\"} 41\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE node_b_total counter\nnode_b_total{chip=\"x\"} 18446744073709551615\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("gridnode_driver_up{driver=\"awkward\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("gridnode_driver_samples{driver=\"awkward\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("gridnode_build_info{version=\""), std::string::npos);
  // Rendering again from the cache gives the same text.
  std::string again;
  e.render_prometheus(*sampler, again);
  EXPECT_EQ(text, again);
}

// collect[] / exclude[]: a driver left out loses its samples and its gridnode_driver_* lines;
// the unfiltered render after a filtered one is the full text again (the caches are shared).
TEST(Exposition, RendersOnlyTheIncludedDrivers) {
  asio::io_context io{1};
  std::vector<std::unique_ptr<drivers::Driver>> ds;
  ds.push_back(std::make_unique<AwkwardDriver>());
  ds.push_back(std::make_unique<FakeDriver>("second", 1));
  auto sampler = swept(io, std::move(ds));
  Exposition e;
  std::string all;
  e.render_prometheus(*sampler, all);
  ASSERT_NE(all.find("node_a_celsius"), std::string::npos) << all;
  ASSERT_NE(all.find("fake_second_celsius"), std::string::npos) << all;

  std::vector<bool> only_second{false, true};
  std::string text;
  e.render_prometheus(*sampler, text, &only_second);
  EXPECT_EQ(text.find("node_a_celsius"), std::string::npos) << text;
  EXPECT_EQ(text.find("driver=\"awkward\""), std::string::npos) << text;
  EXPECT_NE(text.find("fake_second_celsius{sensor=\"s0\"} 41.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("gridnode_driver_up{driver=\"second\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("gridnode_build_info{version=\""), std::string::npos);

  std::vector<bool> none{false, false};
  e.render_prometheus(*sampler, text, &none);
  EXPECT_EQ(text.find("driver=\""), std::string::npos) << text;
  EXPECT_EQ(text.find("_celsius"), std::string::npos) << text;

  std::string again;
  e.render_prometheus(*sampler, again);
  EXPECT_EQ(again, all);
}

TEST(Exposition, JsonCarriesExactRawValues) {
  asio::io_context io{1};
  std::vector<std::unique_ptr<drivers::Driver>> ds;
  ds.push_back(std::make_unique<AwkwardDriver>());
  auto sampler = swept(io, std::move(ds));
  auto rows = Exposition::samples_json(*sampler);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1]["raw"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), -1.5);
  EXPECT_EQ(rows[0]["labels"]["chip"], "quote\"back\\slash\nnl");
}

TEST(Exposition, SensorsGroupHwmonPropertiesIntoRows) {
  class HwmonLike final : public drivers::Driver {
   public:
    std::string_view name() const override { return "hwmon"; }
    platform::Result<void> sweep(drivers::Sweep& out) override {
      auto c = std::make_shared<drivers::Catalog>();
      auto in = c->add_family({"node_hwmon_temp_celsius", "", drivers::MetricType::gauge, {1, -3}, "°C"});
      auto crit = c->add_family({"node_hwmon_temp_crit_celsius", "", drivers::MetricType::gauge, {1, -3}, "°C"});
      auto alarm = c->add_family({"node_hwmon_temp_crit_alarm_celsius", "", drivers::MetricType::gauge, {1, -3}, "°C"});
      auto names = c->add_family({"node_hwmon_chip_names", "", drivers::MetricType::gauge, {}, ""});
      auto label = c->add_family({"node_hwmon_sensor_label", "", drivers::MetricType::gauge, {}, ""});
      drivers::Labels l{{"chip", "platform_coretemp_0"}, {"sensor", "temp1"}};
      c->add_series(in, l);
      c->add_series(crit, l);
      c->add_series(alarm, l);
      c->add_series(names, {{"chip", "platform_coretemp_0"}, {"chip_name", "coretemp"}});
      c->add_series(label, {{"chip", "platform_coretemp_0"}, {"label", "Package id 0"}, {"sensor", "temp1"}});
      out.catalog = c;
      out.readings = {{0, drivers::Value::of_signed(41500)},
                      {1, drivers::Value::of_signed(100000)},
                      {2, drivers::Value::of_signed(0)},
                      {3, drivers::Value::of_signed(1)},
                      {4, drivers::Value::of_signed(1)}};
      return {};
    }
  };
  asio::io_context io{1};
  std::vector<std::unique_ptr<drivers::Driver>> ds;
  ds.push_back(std::make_unique<HwmonLike>());
  auto sampler = swept(io, std::move(ds));
  auto rows = Exposition::sensors_json(*sampler);
  ASSERT_EQ(rows.size(), 1u) << rows.dump();
  EXPECT_EQ(rows[0]["chip"], "platform_coretemp_0");
  EXPECT_EQ(rows[0]["chip_name"], "coretemp");
  EXPECT_EQ(rows[0]["label"], "Package id 0");
  EXPECT_EQ(rows[0]["type"], "temp");
  EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), 41.5);
  EXPECT_DOUBLE_EQ(rows[0]["crit"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(rows[0]["crit_alarm"].get<double>(), 0.0);
  EXPECT_EQ(rows[0]["unit"], "°C");
}

TEST(Exposition, StatusNamesEachDriverState) {
  asio::io_context io{1};
  std::vector<std::unique_ptr<drivers::Driver>> ds;
  auto absent = std::make_unique<FakeDriver>("gone");
  absent->failure = std::errc::no_such_file_or_directory;
  ds.push_back(std::move(absent));
  ds.push_back(std::make_unique<FakeDriver>("fine"));
  auto sampler = swept(io, std::move(ds));
  auto j = Exposition::status_json(*sampler, std::chrono::steady_clock::now(), "defaults");
  ASSERT_EQ(j["drivers"].size(), 2u);
  EXPECT_EQ(j["drivers"][0]["state"], "absent");
  EXPECT_NE(j["drivers"][0]["error"].get<std::string>().find("scripted"), std::string::npos);
  EXPECT_EQ(j["drivers"][1]["state"], "up");
  EXPECT_EQ(j["drivers"][1]["samples"], 3);
  EXPECT_EQ(j["version"], std::string(version()));
}

}  // namespace
}  // namespace gridnode::agent
