#include "gridnode/agent/config.hpp"

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

TEST(Config, DefaultsWhenEmpty) {
  auto c = parse_config("", "agent.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->interval, std::chrono::seconds(1));
  EXPECT_EQ(c->socket_path, "/run/gridnode/control.sock");
  EXPECT_EQ(c->roots.sysfs, "/sys");
  EXPECT_EQ(c->socket_mode, 0660u);
  EXPECT_EQ(c->source, "agent.toml");
}

TEST(Config, ParsesEveryKey) {
  auto c = parse_config(R"(
[agent]
interval = 0.25
sweep_timeout = 2
drivers = ["hwmon", "procfs"]
log_level = "debug"
state_dir = "/tmp/state"

[paths]
sysfs = "/fixture/sys"
procfs = "/fixture/proc"

[control]
socket = "/tmp/c.sock"
group = "1234"
mode = "0600"
)",
                        "agent.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->interval, std::chrono::milliseconds(250));
  EXPECT_EQ(c->sweep_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->drivers, (std::vector<std::string>{"hwmon", "procfs"}));
  EXPECT_EQ(c->log_level, platform::Level::debug);
  EXPECT_EQ(c->state_dir, "/tmp/state");
  EXPECT_EQ(c->roots.sysfs, "/fixture/sys");
  EXPECT_EQ(c->roots.procfs, "/fixture/proc");
  EXPECT_EQ(c->socket_path, "/tmp/c.sock");
  EXPECT_EQ(c->socket_group, "1234");
  EXPECT_EQ(c->socket_mode, 0600u);
}

// Every rejection names the file, the line and the key.
struct BadCase {
  const char* text;
  const char* expect;  // substring of the message
};

class ConfigRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigRejects, NamesKeyAndLine) {
  auto c = parse_config(GetParam().text, "agent.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, std::errc::invalid_argument);
  EXPECT_NE(c.error().message().find(GetParam().expect), std::string::npos) << c.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigRejects,
    ::testing::Values(
        BadCase{"[agent]\n\ninterval = 1\nintervall = 2\n", "agent.toml:4: unknown key agent.intervall"},
        BadCase{"[agent]\ninterval = 0\n", "agent.toml:2: agent.interval: must be a number of seconds"},
        BadCase{"[agent]\ninterval = \"fast\"\n", "agent.toml:2: agent.interval"},
        BadCase{"[agent]\ninterval = 1e9\n", "agent.interval"},
        BadCase{"[agent]\ninterval = nan\n", "agent.interval"},
        BadCase{"[agent]\nlog_level = \"loud\"\n", "agent.toml:2: agent.log_level"},
        BadCase{"[agent]\ndrivers = \"hwmon\"\n", "agent.toml:2: agent.drivers: must be an array"},
        BadCase{"[agent]\ndrivers = [1]\n", "agent.drivers: must be a string"},
        BadCase{"[control]\nmode = \"0777x\"\n", "agent.toml:2: control.mode"},
        BadCase{"[control]\nmode = \"0060\"\n", "control.mode"},
        BadCase{"[paths]\nsysfs = 3\n", "agent.toml:2: paths.sysfs: must be a string"},
        BadCase{"[nonsense]\nx = 1\n", "agent.toml:1: unknown section [nonsense]"},
        BadCase{"agent = 5\n", "agent.toml:1: agent: must be a table"},
        BadCase{"[agent\ninterval = 1\n", "agent.toml:1:"},
        BadCase{"[agent]\ninterval = 1\ninterval = 2\n", "agent.toml:3:"},
        // Text that sends toml++ 3.x into undefined behaviour is refused before it parses.
        BadCase{"[agent]\n[>a]\n", "agent.toml:2: malformed table header"},
        BadCase{"[[[1]]]\n", "agent.toml:1: malformed table header"},
        BadCase{"[agent]\ninterval =\xc2\xa0" "1\n", "agent.toml:2: a non-ASCII character"},
        BadCase{"[web]\n\nlisten_address = \":9100\"\n", "agent.toml:3: unknown key web.listen_address"},
        BadCase{"[web]\nlisten_addresses = \":9100\"\n", "agent.toml:2: web.listen_addresses: must be an array"},
        BadCase{"[web]\nlisten_addresses = [\"9100\"]\n", "agent.toml:2: web.listen_addresses: \"9100\": HOST:PORT"},
        BadCase{"[web]\nlisten_addresses = [\":99999\"]\n", "web.listen_addresses: \":99999\": the port"},
        BadCase{"[web]\nlisten_addresses = [\"::1:9100\"]\n", "web.listen_addresses: \"::1:9100\": an IPv6 address goes in brackets"},
        BadCase{"[web]\ntelemetry_path = \"metrics\"\n", "agent.toml:2: web.telemetry_path: \"metrics\": must start with '/'"},
        BadCase{"[web]\ntelemetry_path = \"/\"\n", "web.telemetry_path"},
        BadCase{"[web]\ntelemetry_path = \"/a b\"\n", "web.telemetry_path"},
        BadCase{"[web]\ntelemetry_path = \"/m?x=1\"\n", "web.telemetry_path"},
        BadCase{"[web]\nmax_requests = -1\n", "agent.toml:2: web.max_requests"},
        BadCase{"[web]\nconfig_file = 3\n", "agent.toml:2: web.config_file: must be a string"}));

TEST(Config, WebSection) {
  auto d = parse_config("", "agent.toml");
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->web_listen.empty());  // no listen address: no port
  EXPECT_EQ(d->web_telemetry_path, "/metrics");
  EXPECT_EQ(d->web_max_requests, 40u);
  auto c = parse_config(R"([web]
listen_addresses = [":9100", "127.0.0.1:0", "[::1]:9100"]
config_file = "/etc/gridnode/web.yml"
telemetry_path = "/node/metrics"
max_requests = 3
)",
                        "agent.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->web_listen, (std::vector<std::string>{":9100", "127.0.0.1:0", "[::1]:9100"}));
  EXPECT_EQ(c->web_config_file, "/etc/gridnode/web.yml");
  EXPECT_EQ(c->web_telemetry_path, "/node/metrics");
  EXPECT_EQ(c->web_max_requests, 3u);
  EXPECT_TRUE(check_listen_address("localhost:9100"));
  EXPECT_FALSE(check_listen_address(":"));
  EXPECT_FALSE(check_listen_address("[::1]"));
}

// [nvml] is the nvml driver's own section: the agent hands it over with where each key was,
// and the driver's registry entry checks and reads it.
TEST(Config, NvmlSection) {
  auto c = parse_config("[nvml]\nlibrary = \"/opt/nvidia/libnvidia-ml.so.1\"\ncall_timeout = 0.5\n",
                        "agent.toml");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->driver_sections.size(), 1u);
  const auto& s = c->driver_sections[0];
  EXPECT_EQ(s.name, "nvml");
  ASSERT_EQ(s.values.size(), 2u);
  EXPECT_EQ(s.values[0].key, "library");
  EXPECT_EQ(s.values[0].where, "agent.toml:2");
  EXPECT_EQ(std::get<std::string>(s.values[0].value), "/opt/nvidia/libnvidia-ml.so.1");
  EXPECT_EQ(std::get<double>(s.values[1].value), 0.5);
  EXPECT_TRUE(parse_config("", "agent.toml")->driver_sections.empty());
  auto drivers = drivers::make_drivers(driver_context(*c), {"nvml"}, c->driver_sections);
  ASSERT_TRUE(drivers) << drivers.error().message();
  EXPECT_EQ(drivers->size(), 1u);

  // Refused where the agent's own keys are: at parse time, naming file, line and key.
  auto bogus = parse_config("[nvml]\nbogus = 1\n", "agent.toml");
  ASSERT_FALSE(bogus);
  EXPECT_EQ(bogus.error().context, "agent.toml:2: unknown key nvml.bogus");
  auto slow = parse_config("[nvml]\n\ncall_timeout = 600\n", "agent.toml");
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().context,
            "agent.toml:3: nvml.call_timeout: must be a number of seconds from 0.01 to 60");
  auto wrong = parse_config("[nvml]\nlibrary = 7\n", "agent.toml");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().context, "agent.toml:2: nvml.library: must be a string");
  auto nested = parse_config("[nvml.more]\nx = 1\n", "agent.toml");
  ASSERT_FALSE(nested);
  EXPECT_NE(nested.error().context.find("nvml.more: must be a string, a number"),
            std::string::npos)
      << nested.error().context;
  // A driver that reads no section: unknown, like any other section.
  auto hwmon = parse_config("[hwmon]\nx = 1\n", "agent.toml");
  ASSERT_FALSE(hwmon);
  EXPECT_EQ(hwmon.error().context, "agent.toml:1: unknown section [hwmon]");
  // A second file merges key by key, as the agent's own sections do.
  auto later = parse_config("[nvml]\ncall_timeout = 2\n", "second.toml", *c);
  ASSERT_TRUE(later) << later.error().message();
  ASSERT_EQ(later->driver_sections[0].values.size(), 2u);
  EXPECT_EQ(later->driver_sections[0].values[1].where, "second.toml:2");
}

TEST(Config, ReadConfigMissingFileIsNoSuchFile) {
  auto c = read_config("/nonexistent/agent.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, std::errc::no_such_file_or_directory);
}

TEST(Config, ReadConfigFromFile) {
  testing::FakeTree t;
  t.write("agent.toml", "[agent]\ninterval = 2.5\n");
  auto c = read_config(t.root() + "/agent.toml");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->interval, std::chrono::milliseconds(2500));
  EXPECT_EQ(c->source, t.root() + "/agent.toml");
}

TEST(Config, ParseSecondsAcceptsFractionsOnly) {
  EXPECT_EQ(parse_seconds("0.05").value(), std::chrono::milliseconds(50));
  EXPECT_FALSE(parse_seconds("abc"));
  EXPECT_FALSE(parse_seconds("-1"));
  EXPECT_FALSE(parse_seconds("0"));
  EXPECT_FALSE(parse_seconds("1s"));
}

}  // namespace
}  // namespace gridnode::agent

namespace gridnode::agent {
namespace {

// The shipped example documents every key with its default: it must parse to the defaults.
TEST(Config, ShippedExampleParsesToTheDefaults) {
  auto c = read_config(std::string(GRIDNODE_SOURCE_DIR) + "/packaging/agent.toml");
  ASSERT_TRUE(c) << c.error().message();
  Config d;
  EXPECT_EQ(c->interval, d.interval);
  EXPECT_EQ(c->sweep_timeout, d.sweep_timeout);
  EXPECT_EQ(c->log_level, d.log_level);
  EXPECT_EQ(c->state_dir, d.state_dir);
  EXPECT_EQ(c->roots.sysfs, d.roots.sysfs);
  EXPECT_EQ(c->roots.procfs, d.roots.procfs);
  EXPECT_EQ(c->socket_path, d.socket_path);
  EXPECT_EQ(c->socket_group, d.socket_group);
  EXPECT_EQ(c->socket_mode, d.socket_mode);
  EXPECT_TRUE(c->drivers.empty());
  EXPECT_EQ(c->upstream_endpoints, d.upstream_endpoints);
  EXPECT_EQ(c->upstream_ca, d.upstream_ca);
  EXPECT_EQ(c->upstream_cert, d.upstream_cert);
  EXPECT_EQ(c->upstream_key, d.upstream_key);
  EXPECT_EQ(c->upstream_pin, d.upstream_pin);
  EXPECT_EQ(c->keyframe_interval, d.keyframe_interval);
  EXPECT_EQ(c->spool_max_bytes, d.spool_max_bytes);
  EXPECT_EQ(c->spool_fsync_interval, d.spool_fsync_interval);
  EXPECT_EQ(c->node_id, d.node_id);
  EXPECT_EQ(c->node_labels, d.node_labels);
  EXPECT_EQ(c->web_listen, d.web_listen);
  EXPECT_EQ(c->web_config_file, d.web_config_file);
  EXPECT_EQ(c->web_telemetry_path, d.web_telemetry_path);
  EXPECT_EQ(c->web_max_requests, d.web_max_requests);
}

TEST(Config, UpstreamAndNode) {
  auto c = parse_config(R"([upstream]
endpoints = ["collector.example:4443", "[::1]:4443"]
ca = "/etc/grid/ca.pem"
pin = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
[node]
id = "node-7"
site = "dc1"
region = "east"
)", "agent.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->upstream_endpoints,
            (std::vector<std::string>{"collector.example:4443", "[::1]:4443"}));
  EXPECT_EQ(c->upstream_ca, "/etc/grid/ca.pem");
  EXPECT_EQ(c->node_id, "node-7");
  EXPECT_EQ(c->node_labels, (platform::Labels{{"region", "east"}, {"site", "dc1"}}));
  for (const char* bad : {"[upstream]\nendpoints = [\"nohost\"]\n",
                          "[upstream]\nendpoints = [\"h:99999\"]\n",
                          "[upstream]\nendpoints = \"h:1\"\n",
                          "[upstream]\npin = \"abc\"\n",
                          "[node]\nid = \"bad id\"\n",
                          "[report]\nkeyframe_interval = 0\n"}) {
    auto r = parse_config(bad, "agent.toml");
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().context.find("agent.toml:"), std::string::npos) << r.error().context;
    }
  }
}

}  // namespace
}  // namespace gridnode::agent
