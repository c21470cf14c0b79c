#include "gridnode/drivers/ipmi.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <sstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../drivers/src/ipmi/bmc.hpp"
#include "../../drivers/src/ipmi/freeipmi_bmc.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"
#include "gridnode/platform/files.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using ipmi::BmcReading;
using ipmi::SelChange;
using ipmi::SelEntry;
using ipmi::SelPosition;
using ipmi::SensorKind;
using ipmi::SensorReading;
using ipmi::SensorState;
using testing::has_line;
using testing::sweep_text;
using testing::TempDir;
using namespace std::chrono_literals;

SensorReading sensor(std::uint32_t id, std::string name, std::string type, SensorKind kind,
                     std::optional<double> value, SensorState state) {
  SensorReading r;
  r.record_id = id;
  r.name = std::move(name);
  r.type = std::move(type);
  r.kind = kind;
  r.has_value = value.has_value();
  r.value = value.value_or(0);
  r.state = state;
  return r;
}

SelEntry sel(std::uint16_t id, std::uint32_t ts, std::string sensor, std::string type,
             std::string event, SensorState state) {
  SelEntry e;
  e.record_id = id;
  e.timestamp = ts;
  e.sensor = std::move(sensor);
  e.sensor_type = std::move(type);
  e.event = std::move(event);
  e.direction = "assertion";
  e.state = state;
  return e;
}

// A BMC in memory with ipmi_sim's fixture's sensors (tests/fixtures/ipmi/bmc.emu) and a SEL the
// test appends to. It answers read() as FreeIpmiBmc does: the SEL entries after `from`, the
// position after them. `hold()` makes the next read block until `release()`.
class FakeBmc final : public ipmi::Bmc {
 public:
  std::string id() const override { return "fake:623"; }
  bool present() const override { return true; }

  void read(const SelPosition& from, std::size_t max_sel, BmcReading& out) override {
    std::unique_lock lock(mu_);
    froms_.push_back(from);
    cv_.wait(lock, [&] { return !held_; });
    ++reads_;
    if (failure_) {
      out.failure = failure_;
      return;
    }
    out.sensors_ok = true;
    out.sensors = sensors_;
    out.chassis_ok = true;
    out.power_on = true;
    out.dcmi_supported = true;
    out.dcmi_ok = true;
    out.dcmi_watts = 312;
    out.sel_ok = true;
    out.sel_entries = static_cast<std::uint32_t>(sel_.size());
    out.sel_free_bytes = 1024 - 16 * out.sel_entries;
    SelPosition p = from;
    std::size_t start = 0;
    if (!p.valid || p.erase_timestamp != erased_) {
      if (p.valid) {
        out.sel_change = SelChange::cleared;
      }
      p = SelPosition{};
    } else {
      while (start < sel_.size() && sel_[start].record_id != p.record_id) {
        ++start;
      }
      ++start;  // after the position's own entry
    }
    p.bmc = id();
    p.erase_timestamp = erased_;
    for (std::size_t i = start; i < sel_.size() && out.sel_new.size() < max_sel; ++i) {
      out.sel_new.push_back(sel_[i]);
      p.valid = true;
      p.record_id = sel_[i].record_id;
      p.timestamp = sel_[i].timestamp;
    }
    out.sel_position = p;
  }

  void add_sel(SelEntry e) {
    std::lock_guard lock(mu_);
    sel_.push_back(std::move(e));
  }
  void clear_sel(std::uint32_t when) {
    std::lock_guard lock(mu_);
    sel_.clear();
    erased_ = when;
  }
  void fail(std::optional<platform::Error> e) {
    std::lock_guard lock(mu_);
    failure_ = std::move(e);
  }
  void set_value(std::size_t i, double v) {
    std::lock_guard lock(mu_);
    sensors_[i].value = v;
  }
  void hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  int reads() const {
    std::lock_guard lock(mu_);
    return reads_;
  }
  std::vector<SelPosition> froms() const {
    std::lock_guard lock(mu_);
    return froms_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int reads_ = 0;
  std::optional<platform::Error> failure_;
  std::vector<SelPosition> froms_;
  std::uint32_t erased_ = 0;
  std::vector<SelEntry> sel_ = {
      sel(1, 7, "PSU1 Status", "Power Supply", "Presence detected", SensorState::nominal),
      sel(2, 7, "PSU2 Status", "Power Supply", "Presence detected", SensorState::nominal)};
  std::vector<SensorReading> sensors_ = {
      sensor(1, "Inlet Temp", "Temperature", SensorKind::temperature, 24.0, SensorState::nominal),
      sensor(2, "CPU Temp", "Temperature", SensorKind::temperature, 83.5, SensorState::nominal),
      sensor(3, "FAN1", "Fan", SensorKind::fan_rpm, 5400.0, SensorState::nominal),
      sensor(4, "FAN2", "Fan", SensorKind::fan_rpm, 400.0, SensorState::critical),
      sensor(5, "12V", "Voltage", SensorKind::voltage, 12.06, SensorState::nominal),
      sensor(7, "PSU1 Current", "Current", SensorKind::current, 5.2, SensorState::nominal),
      sensor(8, "PSU1 Power", "Current", SensorKind::power, 244.0, SensorState::nominal),
      sensor(9, "PSU1 Status", "Power Supply", SensorKind::generic, std::nullopt,
             SensorState::nominal),
      sensor(10, "PSU2 Status", "Power Supply", SensorKind::generic, std::nullopt,
             SensorState::warning),
      sensor(11, "Unreadable", "Temperature", SensorKind::temperature, std::nullopt,
             SensorState::unknown)};
};

struct Rig {
  TempDir dir;
  std::shared_ptr<FakeBmc> bmc = std::make_shared<FakeBmc>();
  IpmiOptions options() {
    IpmiOptions o;
    o.interface = IpmiInterface::lanplus;
    o.host = "fake";
    o.state_dir = dir.path();
    o.interval = 0ms;  // every sweep starts the next reading
    o.timeout = 20ms;
    o.bmc = bmc;
    return o;
  }
};

// Sweeps until `done(sweep)` or 5 s; every event seen on the way is appended to `events`.
template <class F>
Sweep sweep_until(Driver& d, F done, std::vector<DeviceEvent>* events = nullptr) {
  auto end = std::chrono::steady_clock::now() + 5s;
  Sweep s;
  for (;;) {
    s.reset();
    auto r = d.sweep(s);
    if (events) {
      events->insert(events->end(), s.events.begin(), s.events.end());
    }
    if ((r && done(s)) || std::chrono::steady_clock::now() > end) {
      return s;
    }
    std::this_thread::sleep_for(2ms);
  }
}

std::string field(const DeviceEvent& e, std::string_view key) {
  for (const auto& [k, v] : e.fields) {
    if (k == key) {
      return v;
    }
  }
  return "<none>";
}

TEST(IpmiDriver, ReadingsUnderIpmiExporterNames) {
  Rig rig;
  auto d = make_ipmi_driver(rig.options());
  Sweep s = testing::sweep_ok(*d);  // the first sweep waits for the first reading
  testing::expect_golden(sweep_text(s), testing::fixture_path("ipmi/fake/expected.prom"));
  std::string text = sweep_text(s);
  // ipmi_exporter's NaN for a reading FreeIPMI calls N/A is an absent sample here.
  EXPECT_FALSE(has_line(text, "ipmi_sensor_value{id=\"9\",name=\"PSU1 Status\",type=\"Power Supply\"} NaN"));
  EXPECT_EQ(text.find("Unreadable"), std::string::npos) << text;
}

TEST(IpmiDriver, SelEntriesBecomeOneEventEachAcrossRestarts) {
  Rig rig;
  std::vector<DeviceEvent> events;
  {
    auto d = make_ipmi_driver(rig.options());
    sweep_until(*d, [&](const Sweep&) { return events.size() >= 2; }, &events);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(field(events[0], "record_id"), "1");
    EXPECT_EQ(field(events[1], "sensor"), "PSU2 Status");
    EXPECT_EQ(events[1].message, "SEL 2: PSU2 Status (Power Supply): Presence detected");
    EXPECT_EQ(events[1].severity, 5);
    rig.bmc->add_sel(sel(3, 9, "FAN2", "Fan", "Lower Critical - going low", SensorState::critical));
    sweep_until(*d, [&](const Sweep&) { return events.size() >= 3; }, &events);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(field(events[2], "record_id"), "3");
    EXPECT_EQ(field(events[2], "state"), "critical");
    EXPECT_EQ(field(events[2], "time"), "post-init+9s");
    EXPECT_EQ(events[2].severity, 3);
    // More sweeps, nothing new: nothing again.
    int reads = rig.bmc->reads();
    sweep_until(*d, [&](const Sweep&) { return rig.bmc->reads() >= reads + 3; }, &events);
    EXPECT_EQ(events.size(), 3u);
  }
  std::string text;
  ASSERT_TRUE(platform::read_file(rig.dir / "ipmi-sel.position", text));
  EXPECT_NE(text.find("record_id 3\n"), std::string::npos) << text;
  struct stat st {};
  ASSERT_EQ(::stat((rig.dir / "ipmi-sel.position").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A restart reads from the saved position: entry 4 only.
  rig.bmc->add_sel(sel(4, 11, "FAN2", "Fan", "Lower Critical - going low", SensorState::critical));
  auto d = make_ipmi_driver(rig.options());
  std::vector<DeviceEvent> after;
  sweep_until(*d, [&](const Sweep&) { return !after.empty() && rig.bmc->reads() >= 6; }, &after);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(field(after[0], "record_id"), "4");
  auto froms = rig.bmc->froms();
  EXPECT_TRUE(froms.back().valid);
}

TEST(IpmiDriver, ClearedSelIsSaidAndReadAgain) {
  Rig rig;
  std::vector<DeviceEvent> events;
  auto d = make_ipmi_driver(rig.options());
  sweep_until(*d, [&](const Sweep&) { return events.size() >= 2; }, &events);
  rig.bmc->clear_sel(100);
  rig.bmc->add_sel(sel(1, 101, "FAN1", "Fan", "Lower Non-critical - going low", SensorState::nominal));
  sweep_until(*d, [&](const Sweep&) { return events.size() >= 4; }, &events);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(field(events[2], "change"), "cleared");
  EXPECT_EQ(events[2].severity, 4);
  EXPECT_EQ(field(events[3], "record_id"), "1");
  EXPECT_EQ(field(events[3], "sensor"), "FAN1");
}

TEST(IpmiDriver, SweepNeverWaitsForAHungBmc) {
  Rig rig;
  auto d = make_ipmi_driver(rig.options());
  Sweep first = testing::sweep_ok(*d);
  ASSERT_TRUE(has_line(sweep_text(first), "ipmi_voltage_volts{id=\"5\",name=\"12V\"} 12.06"));
  rig.bmc->hold();
  sweep_until(*d, [&](const Sweep&) { return rig.bmc->froms().size() >= 3; });
  // The BMC now hangs in a read: sweeps return at once, with the last complete reading.
  for (int i = 0; i < 5; ++i) {
    Sweep s;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(d->sweep(s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);
    EXPECT_TRUE(has_line(sweep_text(s), "ipmi_voltage_volts{id=\"5\",name=\"12V\"} 12.06"));
  }
  // Past the reading's bound (4 timeouts + 2 s) the driver says so, still without waiting.
  std::this_thread::sleep_for(2200ms);
  Sweep s;
  auto t0 = std::chrono::steady_clock::now();
  auto r = d->sweep(s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::timed_out);
  EXPECT_NE(r.error().message().find("fake:623"), std::string::npos) << r.error().message();
  rig.bmc->set_value(4, 12.12);
  rig.bmc->release();
  Sweep back = sweep_until(*d, [&](const Sweep& x) {
    return has_line(sweep_text(x), "ipmi_voltage_volts{id=\"5\",name=\"12V\"} 12.12");
  });
  EXPECT_TRUE(has_line(sweep_text(back), "ipmi_voltage_volts{id=\"5\",name=\"12V\"} 12.12"));
}

TEST(IpmiDriver, BmcNotAnsweringIsDownAndRetriedWithBackoff) {
  Rig rig;
  rig.bmc->fail(platform::Error{std::make_error_code(std::errc::permission_denied),
                                "BMC fake:623: password invalid"});
  auto d = make_ipmi_driver(rig.options());
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::permission_denied);
  EXPECT_EQ(r.error().message(), "BMC fake:623: password invalid: Permission denied");
  // The next try waits out the backoff (1 s): sweeps meanwhile do not ask the BMC again.
  for (int i = 0; i < 20; ++i) {
    s.reset();
    EXPECT_FALSE(d->sweep(s));
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(rig.bmc->reads(), 1);
  rig.bmc->fail(std::nullopt);
  Sweep ok = sweep_until(*d, [&](const Sweep& x) { return x.catalog != nullptr; });
  EXPECT_TRUE(has_line(sweep_text(ok), "ipmi_up{collector=\"ipmi\"} 1"));
  EXPECT_GE(rig.bmc->reads(), 2);
}

TEST(IpmiDriver, SteadySweepAllocatesNothing) {
  Rig rig;
  IpmiOptions o = rig.options();
  o.interval = 1h;  // one reading, then sweeps that only hand it out again
  auto d = make_ipmi_driver(o);
  Sweep s = testing::sweep_ok(*d);
  std::size_t n = s.readings.size();
  ASSERT_GT(n, 10u);
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

TEST(IpmiDriver, InbandWithoutDeviceIsAbsent) {
  IpmiOptions o;
  o.device = "/nonexistent/ipmi0";
  auto d = make_ipmi_driver(o);
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(IpmiPasswordFile, RefusedWhenOthersMayReadIt) {
  TempDir dir;
  std::string path = dir / "bmc.pass";
  {
    std::ofstream(path) << "s3cret\n";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto r = read_ipmi_password_file(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::permission_denied);
  EXPECT_NE(r.error().message().find("mode 0640"), std::string::npos) << r.error().message();
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto ok = read_ipmi_password_file(path);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(*ok, "s3cret");  // the trailing newline is not part of the password
  {
    std::ofstream(path, std::ios::trunc) << "with space \r\n";
  }
  EXPECT_EQ(read_ipmi_password_file(path).value_or("?"), "with space ");
  EXPECT_FALSE(read_ipmi_password_file(dir / "missing"));
}

TEST(IpmiSelPosition, RoundTripsAndRefusesGarbage) {
  SelPosition p;
  p.valid = true;
  p.bmc = "127.0.0.1:623";
  p.record_id = 65535;
  p.timestamp = 4294967295u;
  p.erase_timestamp = 12;
  auto back = ipmi::parse_sel_position(ipmi::format_sel_position(p));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, p);
  EXPECT_FALSE(ipmi::parse_sel_position(""));
  EXPECT_FALSE(ipmi::parse_sel_position("garbage\n"));
  EXPECT_FALSE(ipmi::parse_sel_position(
      "gridnode-ipmi-sel 1\nbmc x\nrecord_id 70000\ntimestamp 1\nerase_timestamp 0\nvalid 1\n"));
  EXPECT_FALSE(ipmi::parse_sel_position("gridnode-ipmi-sel 1\nbmc x\nrecord_id 1\n"));
}

TEST(IpmiOptions, WorkaroundFlagsAndPrivilege) {
  auto f = ipmi::parse_workaround_flags(IpmiInterface::lanplus, {"opensesspriv", "authcap"});
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, 0x11u);
  auto bad = ipmi::parse_workaround_flags(IpmiInterface::lanplus, {"idzero"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("lanplus"), std::string::npos) << bad.error().message();
  EXPECT_TRUE(ipmi::parse_workaround_flags(IpmiInterface::lan, {"idzero"}));
  EXPECT_EQ(ipmi::parse_privilege("admin").value_or(0), 4);
  EXPECT_FALSE(ipmi::parse_privilege("root"));
}

// The real FreeIPMI path against OpenIPMI's simulated BMC (tests/fixtures/ipmi), when the
// simulator is installed (Debian's openipmi; gridnode.sh's TEST_PKGS): lanplus with the
// opensesspriv workaround that ipmi_sim needs, the fixture's values and states, the SEL.
class IpmiSim {
 public:
  IpmiSim() {
    if (::access("/usr/bin/ipmi_sim", X_OK) != 0 || ::access("/usr/bin/sdrcomp", X_OK) != 0) {
      return;
    }
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    std::string fixtures = testing::fixture_path("ipmi");
    std::string state = dir_ / "state/ipmi_sim/gridnode";
    std::string cmd = "mkdir -p '" + state + "' && sdrcomp -8 -o '" + state + "/sdr.20.main' '" +
                      fixtures + "/sensors.sdrs' && sed -e s/@PORT@/" + std::to_string(port_) +
                      "/ -e s/@CONSOLE@/" + std::to_string(port_ + 1) + "/ '" + fixtures +
                      "/lan.conf.in' > '" + (dir_ / "lan.conf") + "'";
    if (std::system(cmd.c_str()) != 0) {
      return;
    }
    std::string conf = dir_ / "lan.conf";
    std::string emu = fixtures + "/bmc.emu";
    std::string st = dir_ / "state";
    std::vector<std::string> args = {"ipmi_sim", "-c", conf, "-f", emu, "-s", st, "-n"};
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, "ipmi_sim", &fa, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
  }
  ~IpmiSim() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST(IpmiFreeIpmi, ReadsTheSimulatedBmc) {
  IpmiSim sim;
  if (!sim.running()) {
    GTEST_SKIP() << "ipmi_sim/sdrcomp not installed (Debian: openipmi)";
  }
  TempDir state;
  IpmiOptions o;
  o.interface = IpmiInterface::lanplus;
  o.host = "127.0.0.1";
  o.port = static_cast<std::uint16_t>(sim.port());
  o.username = "gridnode";
  o.password = "s3cret-bmc-pass";
  o.workaround_flags = {"opensesspriv"};
  o.timeout = 1000ms;
  o.interval = 0ms;
  o.state_dir = state.path();
  auto d = make_ipmi_driver(o);
  std::vector<DeviceEvent> events;
  Sweep s = sweep_until(*d, [&](const Sweep& x) { return x.catalog != nullptr && events.size() >= 2; },
                        &events);
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "ipmi_up{collector=\"ipmi\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_temperature_celsius{id=\"1\",name=\"Inlet Temp\"} 24")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_temperature_celsius{id=\"2\",name=\"CPU Temp\"} 83")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_fan_speed_rpm{id=\"3\",name=\"FAN1\"} 5400")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_fan_speed_state{id=\"4\",name=\"FAN2\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_voltage_volts{id=\"5\",name=\"12V\"} 12.06")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_current_amperes{id=\"7\",name=\"PSU1 Current\"} 5.2")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_power_watts{id=\"8\",name=\"PSU1 Power\"} 244")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_sensor_state{id=\"10\",name=\"PSU2 Status\",type=\"Power Supply\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "ipmi_chassis_power_state 0")) << text;
  // The SDR's thresholds, decoded with each sensor's conversion (0.5 °C, 50 RPM, 0.06 V steps).
  EXPECT_TRUE(has_line(text, "gridnode_ipmi_sensor_threshold{id=\"2\",name=\"CPU Temp\",threshold=\"upper_critical\"} 90")) << text;
  EXPECT_TRUE(has_line(text, "gridnode_ipmi_sensor_threshold{id=\"4\",name=\"FAN2\",threshold=\"lower_critical\"} 500")) << text;
  EXPECT_TRUE(has_line(text, "gridnode_ipmi_sensor_threshold{id=\"5\",name=\"12V\",threshold=\"upper_non_critical\"} 12.6")) << text;
  EXPECT_EQ(text.find("threshold=\"lower_critical\"} 0"), std::string::npos) << "unreadable ones absent:\n" << text;
  EXPECT_TRUE(has_line(text, "ipmi_sel_logs_count 2")) << text;
  EXPECT_EQ(text.find("ipmi_dcmi"), std::string::npos) << "ipmi_sim has no DCMI:\n" << text;
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(field(events[0], "sensor"), "PSU1 Status");
  EXPECT_EQ(field(events[0], "event"), "Presence detected");
  EXPECT_EQ(field(events[0], "sensor_type"), "Power Supply");
  // The SDR cache went where it was told, not to the home directory.
  EXPECT_EQ(::access((state / "ipmi-sdr-cache").c_str(), F_OK), 0);
}

TEST(IpmiFreeIpmi, WrongPasswordIsAClearError) {
  IpmiSim sim;
  if (!sim.running()) {
    GTEST_SKIP() << "ipmi_sim/sdrcomp not installed (Debian: openipmi)";
  }
  TempDir state;
  IpmiOptions o;
  o.interface = IpmiInterface::lanplus;
  o.host = "127.0.0.1";
  o.port = static_cast<std::uint16_t>(sim.port());
  o.username = "gridnode";
  o.password = "wrong";
  o.workaround_flags = {"opensesspriv"};
  o.timeout = 1000ms;
  o.state_dir = state.path();
  std::this_thread::sleep_for(300ms);  // the simulator's socket
  auto d = make_ipmi_driver(o);
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::permission_denied) << r.error().message();
  EXPECT_NE(r.error().message().find("password"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace gridnode::drivers
