#include "gridnode/drivers/netclass.hpp"

#include <gtest/gtest.h>

#include <string>

#include "../../drivers/src/netclass/netclass_options.hpp"
#include "../../drivers/src/netclass/netclass_parse.hpp"
#include "gridnode/drivers/registry.hpp"
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

NetclassOptions options_at(const std::string& root, bool keep_open = true) {
  NetclassOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  options.keep_files_open = keep_open;
  return options;
}

std::unique_ptr<Driver> driver_at(const std::string& root, bool keep_open = true) {
  return make_netclass_driver(options_at(root, keep_open));
}

// A device as the kernel lays it out: class/net/NAME links to the device's net/NAME.
void add_device(FakeTree& tree, std::string_view name, std::string_view operstate,
                std::string_view speed = "1000") {
  std::string dev = "sys/devices/virtual/net/" + std::string(name) + "/";
  tree.write(dev + "operstate", std::string(operstate) + "\n");
  tree.write(dev + "address", "52:54:00:12:34:56\n");
  tree.write(dev + "mtu", "1500\n");
  tree.write(dev + "flags", "0x1003\n");
  if (!speed.empty()) {
    tree.write(dev + "speed", std::string(speed) + "\n");
  }
  tree.symlink("../../devices/virtual/net/" + std::string(name),
               "sys/class/net/" + std::string(name));
}

TEST(NetclassParse, GoParseIntBaseZero) {
  using netclass::parse_go_int;
  EXPECT_EQ(parse_go_int("1500\n"), 1500);
  EXPECT_EQ(parse_go_int("-1\n"), -1);
  EXPECT_EQ(parse_go_int("+7"), 7);
  EXPECT_EQ(parse_go_int("0x1003\n"), 4099);
  EXPECT_EQ(parse_go_int("0X1f"), 31);
  EXPECT_EQ(parse_go_int("0x0\n"), 0);
  EXPECT_EQ(parse_go_int("010"), 8);  // a leading 0 is octal in Go
  EXPECT_EQ(parse_go_int("0o17"), 15);
  EXPECT_EQ(parse_go_int("0b101"), 5);
  EXPECT_EQ(parse_go_int("0"), 0);
  EXPECT_EQ(parse_go_int("0x_1_0"), 16);  // Go allows "_" after a base prefix
  EXPECT_EQ(parse_go_int("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(parse_go_int("-9223372036854775808"), INT64_MIN);
  EXPECT_FALSE(parse_go_int(""));
  EXPECT_FALSE(parse_go_int("\n"));
  EXPECT_FALSE(parse_go_int("-"));
  EXPECT_FALSE(parse_go_int("0x"));
  EXPECT_FALSE(parse_go_int("08"));     // not octal
  EXPECT_FALSE(parse_go_int("1_000"));  // "_" needs a base prefix
  EXPECT_FALSE(parse_go_int("0x1__0"));
  EXPECT_FALSE(parse_go_int("0x10_"));
  EXPECT_FALSE(parse_go_int("15oo"));
  EXPECT_FALSE(parse_go_int("1 2"));
  EXPECT_FALSE(parse_go_int("9223372036854775808"));
  EXPECT_FALSE(parse_go_int("0x10000000000000000"));
}

TEST(NetclassDriver, BasicFixtureMatchesGolden) {
  auto driver = driver_at(fixture_path("netclass/basic"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  std::string text = sweep_text(out);
  // bonding_masters (a regular file) is no device.
  EXPECT_EQ(text.find("bonding_masters"), std::string::npos);
  EXPECT_TRUE(has_line(text, "node_network_speed_bytes{device=\"ens1f0np0\"} 3125000000")) << text;
  EXPECT_TRUE(has_line(text, "node_network_speed_bytes{device=\"ens1f1np1\"} -125000")) << text;
  EXPECT_TRUE(has_line(text, "node_network_flags{device=\"eno1\"} 4099")) << text;
  EXPECT_TRUE(has_line(text, "node_network_up{device=\"eno1\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "node_network_up{device=\"lo\"} 0")) << text;
  // eno2 is administratively down: its carrier and speed answer EINVAL, so they are absent.
  EXPECT_EQ(text.find("node_network_carrier{device=\"eno2\"}"), std::string::npos);
  EXPECT_EQ(text.find("node_network_speed_bytes{device=\"eno2\"}"), std::string::npos);
  EXPECT_TRUE(has_line(text,
                       "node_network_info{address=\"b8:ce:f6:00:11:22\",broadcast=\"ff:ff:ff:ff:ff:"
                       "ff\",device=\"ens1f0np0\",duplex=\"full\",ifalias=\"uplink to tor1 (port "
                       "17)\",operstate=\"up\"} 1"))
      << text;
  expect_golden(text, fixture_path("netclass/basic/expected.prom"));
}

TEST(NetclassDriver, MalformedFixtureSkipsOnlyTheBadReadings) {
  auto driver = driver_at(fixture_path("netclass/malformed"));
  Sweep out = sweep_ok(*driver);
  // eth0's mtu "15oo" and empty speed: node_exporter reports 0 for both; we skip them.
  EXPECT_EQ(out.errors, 2u);
  std::string text = sweep_text(out);
  EXPECT_EQ(text.find("node_network_mtu_bytes{device=\"eth0\"}"), std::string::npos);
  EXPECT_TRUE(has_line(text, "node_network_mtu_bytes{device=\"lo\"} 65536"));
  expect_golden(text, fixture_path("netclass/malformed/expected.prom"));
}

TEST(NetclassDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("netclass/basic"));
  Sweep out = sweep_ok(*driver);
  std::size_t checked = 0;
  for (const auto& f : out.catalog->families) {
    if (f.name == "node_network_up") {
      EXPECT_EQ(f.help, "Value is 1 if operstate is 'up', 0 otherwise.");
    } else if (f.name == "node_network_info") {
      EXPECT_EQ(f.help, "Non-numeric data from /sys/class/net/<iface>, value is always 1.");
    } else {
      ASSERT_EQ(f.name.rfind("node_network_", 0), 0u) << f.name;
      EXPECT_EQ(f.help, "Network device property: " + f.name.substr(13));
    }
    bool counter = f.name.ends_with("_total");
    EXPECT_EQ(f.type, counter ? MetricType::counter : MetricType::gauge) << f.name;
    EXPECT_EQ(f.scale, (f.name == "node_network_speed_bytes" ? Scale{125000, 0} : Scale{1, 0}));
    ++checked;
  }
  // up, info and the 17 properties.
  EXPECT_EQ(checked, 19u);
}

TEST(NetclassDriver, OperstateChangeRelabelsInfoAtTheNextSweep) {
  FakeTree tree;
  add_device(tree, "eth0", "up");
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  EXPECT_TRUE(has_line(sweep_text(first), "node_network_up{device=\"eth0\"} 1"));
  // The link goes down: up says so at once, info (and the file set) follow at the next sweep.
  tree.write("sys/devices/virtual/net/eth0/operstate", "down\n");
  tree.remove("sys/devices/virtual/net/eth0/speed");
  Sweep second = sweep_ok(*driver);
  std::string text = sweep_text(second);
  EXPECT_TRUE(has_line(text, "node_network_up{device=\"eth0\"} 0")) << text;
  Sweep third = sweep_ok(*driver);
  text = sweep_text(third);
  EXPECT_EQ(third.errors, 0u);
  EXPECT_NE(third.catalog, first.catalog);
  EXPECT_NE(text.find("operstate=\"down\""), std::string::npos) << text;
  EXPECT_EQ(text.find("speed"), std::string::npos) << text;
  // Steady again: no more walks while operstate stays.
  Sweep fourth = sweep_ok(*driver);
  EXPECT_EQ(fourth.catalog, third.catalog);
}

TEST(NetclassDriver, IgnoredDevicesAndInvalidSpeed) {
  FakeTree tree;
  add_device(tree, "eth0", "up", "-1");
  add_device(tree, "veth1a2b", "up");
  add_device(tree, "docker0", "down");
  auto options = options_at(tree.root());
  options.ignored_devices = "^(veth|docker)";
  options.ignore_invalid_speed = true;
  auto driver = make_netclass_driver(options);
  Sweep out = sweep_ok(*driver);
  std::string text = sweep_text(out);
  EXPECT_EQ(text.find("veth"), std::string::npos) << text;
  EXPECT_EQ(text.find("docker"), std::string::npos) << text;
  EXPECT_TRUE(has_line(text, "node_network_up{device=\"eth0\"} 1"));
  EXPECT_EQ(text.find("node_network_speed_bytes"), std::string::npos) << text;
  EXPECT_EQ(out.errors, 0u);
}

TEST(NetclassDriver, BadRegexIsAnError) {
  FakeTree tree;
  add_device(tree, "eth0", "up");
  auto options = options_at(tree.root());
  options.ignored_devices = "([";
  auto driver = make_netclass_driver(options);
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::invalid_argument);
}

TEST(NetclassOptions, SectionKeys) {
  OptionSection s{"netclass",
                  {{"ignored_devices", "agent.toml:3", std::string("^veth")},
                   {"ignore_invalid_speed", "agent.toml:4", true}}};
  auto o = netclass::options(DriverContext{}, s);
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->ignored_devices, "^veth");
  EXPECT_TRUE(o->ignore_invalid_speed);
  auto defaults = netclass::options(DriverContext{}, OptionSection{"netclass", {}});
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->ignored_devices, "^$");
  EXPECT_FALSE(defaults->ignore_invalid_speed);
  OptionSection bad{"netclass", {{"ignored_devices", "agent.toml:3", std::string("([")}}};
  auto e = netclass::options(DriverContext{}, bad);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("agent.toml:3: netclass.ignored_devices"), std::string::npos)
      << e.error().message();
  OptionSection unknown{"netclass", {{"ignored", "agent.toml:5", std::string("x")}}};
  EXPECT_FALSE(netclass::options(DriverContext{}, unknown));
}

TEST(NetclassOptions, TheRegistryEntryOwnsTheSection) {
  EXPECT_TRUE(has_section("netclass"));
  EXPECT_FALSE(has_section("timex"));  // nothing to configure
  EXPECT_TRUE(check_section({"netclass", {{"ignore_invalid_speed", "agent.toml:9", true}}}));
  auto bad =
      check_section({"netclass", {{"ignore_invalid_speed", "agent.toml:9", std::string("y")}}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("agent.toml:9"), std::string::npos) << bad.error().message();
  // Built from its section through the registry, it reads the fixture as configured.
  DriverContext context;
  context.roots.sysfs = fixture_path("netclass/basic") + "/sys";
  auto drivers = make_drivers(
      context, {"netclass"},
      {{"netclass", {{"ignored_devices", "agent.toml:2", std::string("^(lo|wg0|br0|bond0)$")}}}});
  ASSERT_TRUE(drivers) << drivers.error().message();
  ASSERT_EQ(drivers->size(), 1u);
  std::string text = sweep_text(sweep_ok(*drivers->front()));
  EXPECT_EQ(text.find("device=\"lo\""), std::string::npos);
  EXPECT_EQ(text.find("device=\"bond0\""), std::string::npos);
  EXPECT_NE(text.find("device=\"eno1\""), std::string::npos);
}

TEST(NetclassDriver, DeviceVanishingIsDroppedAfterRediscovery) {
  FakeTree tree;
  add_device(tree, "eth0", "up");
  add_device(tree, "eth1", "up");
  auto driver = driver_at(tree.root(), /*keep_open=*/false);
  Sweep first = sweep_ok(*driver);
  tree.remove("sys/class/net/eth1");
  tree.remove("sys/devices/virtual/net/eth1");
  Sweep second = sweep_ok(*driver);
  EXPECT_EQ(second.errors, 4u);  // operstate, flags, mtu, speed
  Sweep third = sweep_ok(*driver);
  EXPECT_EQ(third.errors, 0u);
  EXPECT_EQ(sweep_text(third).find("eth1"), std::string::npos);
}

TEST(NetclassDriver, AbsentIsNoSuchFile) {
  FakeTree tree;
  tree.mkdir("sys/class");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto r = driver->sweep(out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(NetclassDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("netclass/basic"));
  Sweep s = sweep_ok(*d);
  std::size_t n = s.readings.size();
  ASSERT_GT(n, 100u);
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
