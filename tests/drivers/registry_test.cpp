#include "gridnode/drivers/registry.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "../../drivers/src/nvml/nvml_options.hpp"

namespace gridnode::drivers {
namespace {

OptionSection section(std::string name, std::vector<OptionValue> values) {
  return {std::move(name), std::move(values)};
}

TEST(OptionReader, ReadsEachTypeAndNamesWhereAWrongOneWas) {
  auto s = section("x", {{"name", "f.toml:2", std::string("a")},
                         {"count", "f.toml:3", std::int64_t{7}},
                         {"wait", "f.toml:4", 1.5},
                         {"whole", "f.toml:5", std::int64_t{2}},
                         {"on", "f.toml:6", true},
                         {"list", "f.toml:7", std::vector<std::string>{"a", "b"}},
                         {"empty", "f.toml:8", std::string()}});
  const OptionReader r(s);
  EXPECT_TRUE(r.only({"name", "count", "wait", "whole", "on", "list", "empty"}));
  auto unknown = r.only({"name"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().context, "f.toml:3: unknown key x.count");
  EXPECT_EQ(r.string("name").value(), "a");
  EXPECT_EQ(r.string("absent").value(), std::nullopt);
  EXPECT_EQ(r.integer("count", 0, 10).value(), 7);
  EXPECT_EQ(r.seconds("wait", 0, 2).value(), std::chrono::milliseconds(1500));
  EXPECT_EQ(r.seconds("whole", 0, 2).value(), std::chrono::seconds(2));
  EXPECT_EQ(r.boolean("on").value(), true);
  EXPECT_EQ(r.strings("list").value(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.string("empty", true).value(), "");

  EXPECT_EQ(r.string("empty").error().context, "f.toml:8: x.empty: must not be empty");
  EXPECT_EQ(r.string("count").error().context, "f.toml:3: x.count: must be a string");
  EXPECT_EQ(r.integer("count", 8, 9).error().context,
            "f.toml:3: x.count: must be an integer from 8 to 9");
  EXPECT_EQ(r.integer("wait", 0, 9).error().context,
            "f.toml:4: x.wait: must be an integer from 0 to 9");
  EXPECT_EQ(r.seconds("wait", 0.25, 1).error().context,
            "f.toml:4: x.wait: must be a number of seconds from 0.25 to 1");
  EXPECT_EQ(r.seconds("name", 0, 1).error().context,
            "f.toml:2: x.name: must be a number of seconds from 0 to 1");
  EXPECT_EQ(r.boolean("name").error().context, "f.toml:2: x.name: must be true or false");
  EXPECT_EQ(r.strings("name").error().context, "f.toml:2: x.name: must be an array of strings");
  EXPECT_EQ(r.bad("count", "too many").context, "f.toml:3: x.count: too many");
}

TEST(OptionSection, ALaterValueOfAKeyReplacesTheEarlierOne) {
  auto s = section("nvml", {{"library", "agent.toml:2", std::string("a.so")}});
  s.set({"library", "--nvml-library", std::string("b.so")});
  ASSERT_EQ(s.values.size(), 1u);
  EXPECT_EQ(s.values[0].where, "--nvml-library");
  EXPECT_EQ(OptionReader(s).string("library").value(), "b.so");
}

TEST(Registry, SectionsBelongToTheDriversThatReadThem) {
  EXPECT_TRUE(has_section("nvml"));
  EXPECT_FALSE(has_section("hwmon"));  // a driver with no options
  EXPECT_FALSE(has_section("agent"));
  EXPECT_TRUE(check_section(section("nvml", {{"library", "f:1", std::string("x.so")}})));
  auto bad = check_section(section("nvml", {{"library", "f:1", std::int64_t{1}}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().context, "f:1: nvml.library: must be a string");
  EXPECT_FALSE(check_section(section("hwmon", {})));
  // A refused section fails the build of the drivers too, not only the check.
  EXPECT_FALSE(make_drivers({}, {"nvml"}, {section("nvml", {{"bogus", "f:1", true}})}));
  auto flags = driver_flags();
  ASSERT_TRUE(std::any_of(flags.begin(), flags.end(), [](const DriverFlag& f) {
    return f.flag == "--nvml-library" && f.driver == "nvml" && f.key == "library";
  }));
}

TEST(Registry, NvmlKeepsItsCallsInsideHalfTheSweepsDeadline) {
  DriverContext c;
  c.sweep_timeout = std::chrono::seconds(1);
  auto o = nvml::options(c, section("nvml", {{"call_timeout", "f:1", 0.6},
                                             {"library", "f:2", std::string("/opt/x.so")}}));
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->call_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(o->library, "/opt/x.so");
  auto d = nvml::options(c, section("nvml", {}));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->call_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(d->library, "libnvidia-ml.so.1");
  c.sweep_timeout = std::chrono::seconds(5);
  EXPECT_EQ(nvml::options(c, section("nvml", {}))->call_timeout, std::chrono::seconds(1));
}

TEST(Registry, CollectorFlagsSelectOnTopOfTheConfiguredList) {
  const auto all = driver_names();
  EXPECT_EQ(select_drivers({}, {}, {}).value(), std::vector<std::string>{});
  EXPECT_EQ(select_drivers({"hwmon"}, {}, {}).value(), std::vector<std::string>{"hwmon"});
  auto without = select_drivers({}, {}, {"nvml"}).value();
  EXPECT_EQ(without.size(), all.size() - 1);
  EXPECT_EQ(std::count(without.begin(), without.end(), "nvml"), 0);
  // In the registry's order, whatever order the flags came in.
  EXPECT_EQ(select_drivers({"thermal"}, {"procfs"}, {}).value(),
            (std::vector<std::string>{"procfs", "thermal"}));
  EXPECT_EQ(select_drivers({"thermal", "hwmon"}, {}, {"thermal"}).value(),
            std::vector<std::string>{"hwmon"});
  auto none = select_drivers({"hwmon"}, {}, {"hwmon"});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().context, "--no-collector leaves no driver to run");
  auto unknown = select_drivers({}, {"bogus"}, {});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().context, "--collector.NAME: unknown driver \"bogus\"");
}

}  // namespace
}  // namespace gridnode::drivers
