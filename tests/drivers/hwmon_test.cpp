#include "gridnode/drivers/hwmon.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>

#include "../../drivers/src/hwmon/hwmon_parse.hpp"
#include "gridnode/platform/log.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"


namespace gridnode::drivers {
namespace {

using testing::FakeTree;
using testing::fixture_path;
using testing::has_line;
using testing::sweep_ok;
using testing::sweep_text;

std::unique_ptr<Driver> driver_at(const std::string& sysfs, bool keep_open = true) {
  HwmonOptions o;
  o.roots.sysfs = sysfs;
  o.keep_files_open = keep_open;
  return make_hwmon_driver(std::move(o));
}

bool mentions_chip(const Catalog& c, const std::string& chip) {
  return std::any_of(c.series.begin(), c.series.end(), [&](const Series& s) {
    return std::find(s.labels.begin(), s.labels.end(),
                     std::pair<std::string, std::string>("chip", chip)) != s.labels.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Pure parsing rules.

TEST(HwmonParse, SplitsAttributeNamesLikeNodeExporter) {
  auto a = hwmon::parse_attribute_name("temp1_input");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, "temp");
  EXPECT_EQ(a->sensor, "temp1");
  EXPECT_EQ(a->property, "input");
  EXPECT_FALSE(a->bare);

  a = hwmon::parse_attribute_name("temp1_crit_alarm");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->property, "crit_alarm");

  a = hwmon::parse_attribute_name("pwm2");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->sensor, "pwm2");
  EXPECT_EQ(a->property, "");
  EXPECT_FALSE(a->bare);

  a = hwmon::parse_attribute_name("beep_enable");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, "beep_enable");
  EXPECT_EQ(a->sensor, "beep_enable0");
  EXPECT_TRUE(a->bare);

  a = hwmon::parse_attribute_name("update_interval");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->sensor, "update_interval0");

  a = hwmon::parse_attribute_name("power");  // the runtime-PM directory's name
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->bare);

  // Leading zeros fold into one sensor, as strconv.Atoi does.
  a = hwmon::parse_attribute_name("temp01_max");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->sensor, "temp1");

  // Backtracking: the longest type that lets the rest match.
  a = hwmon::parse_attribute_name("temp_x1a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, "temp");
  EXPECT_EQ(a->sensor, "temp0");
  EXPECT_EQ(a->property, "x1a");

  a = hwmon::parse_attribute_name("intrusion0_alarm");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, "intrusion");

  EXPECT_FALSE(hwmon::parse_attribute_name("name"));
  EXPECT_FALSE(hwmon::parse_attribute_name("uevent"));
  EXPECT_FALSE(hwmon::parse_attribute_name("Temp1_input"));  // case-sensitive
  EXPECT_FALSE(hwmon::parse_attribute_name("freq1_input"));  // not read by 1.5.0
  EXPECT_FALSE(hwmon::parse_attribute_name("fan_input"));    // type "fan_input"
  EXPECT_FALSE(hwmon::parse_attribute_name("temp1a"));
  EXPECT_FALSE(hwmon::parse_attribute_name("temp1_"));
  EXPECT_FALSE(hwmon::parse_attribute_name("1temp"));
  EXPECT_FALSE(hwmon::parse_attribute_name(""));
  EXPECT_FALSE(hwmon::parse_attribute_name("temp99999999999999999999_input"));
  EXPECT_FALSE(hwmon::parse_attribute_name("nvme0n1"));
}

TEST(HwmonParse, CleansNamesLikeNodeExporter) {
  EXPECT_EQ(hwmon::clean_metric_name("coretemp\n"), "coretemp");
  EXPECT_EQ(hwmon::clean_metric_name("Package id 0"), "package_id_0");
  EXPECT_EQ(hwmon::clean_metric_name("coretemp.0"), "coretemp_0");
  EXPECT_EQ(hwmon::clean_metric_name("0000:00:18.3"), "0000:00:18_3");
  EXPECT_EQ(hwmon::clean_metric_name("__a--b__"), "a__b");
  EXPECT_EQ(hwmon::clean_metric_name("\n"), "");
  EXPECT_EQ(hwmon::clean_metric_name(""), "");
  // One '_' per character, not per byte; Go lower-cases KELVIN SIGN and dotted I into ASCII.
  EXPECT_EQ(hwmon::clean_metric_name("Foo-Bar K\xE2\x84\xAA\xC4\xB0"), "foo_bar_kki");
  EXPECT_EQ(hwmon::clean_metric_name("a\302\260b"), "a_b");
  EXPECT_EQ(hwmon::clean_metric_name("a\377\376b"), "a__b");
}

TEST(HwmonParse, ReplacesInvalidUtf8RunsOnce) {
  EXPECT_EQ(hwmon::to_valid_utf8("Core 0"), "Core 0");
  EXPECT_EQ(hwmon::to_valid_utf8("a\377\376b\377c"), "a\357\277\275b\357\277\275c");
  EXPECT_EQ(hwmon::to_valid_utf8("\302\260C"), "\302\260C");
  EXPECT_EQ(hwmon::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(hwmon::to_valid_utf8("\xE2\x84"), "\xEF\xBF\xBD");      // truncated
}

TEST(HwmonParse, TrimsOnlyNewlines) {
  EXPECT_EQ(hwmon::trim_newlines("\n42\n\n"), "42");
  EXPECT_EQ(hwmon::trim_newlines(" 42 \n"), " 42 ");
}

TEST(HwmonParse, NamesChipsFromTheDevicePath) {
  EXPECT_EQ(hwmon::chip_name_from_device_path("/sys/devices/platform/coretemp.0"),
            "platform_coretemp_0");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/sys/devices/platform/nct6775.656"),
            "platform_nct6775_656");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/sys/devices/pci0000:00/0000:00:18.3"),
            "pci0000:00_0000:00:18_3");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/sys/devices/pci0000:00/0000:00:03.1/0000:09:00.0"),
            "0000:00:03_1_0000:09:00_0");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/x/nvme/nvme0"), "nvme_nvme0");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/x/i2c-0/0-004c"), "i2c_0_0_004c");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/___/dev"), "dev");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/dev"), "dev");
  EXPECT_EQ(hwmon::chip_name_from_device_path("/x/___"), "");
}

TEST(HwmonParse, ParsesValuesExactly) {
  using hwmon::ValueKind;
  auto v = hwmon::parse_value("41500\n", ValueKind::gauge);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Value::of_signed(41500));
  v = hwmon::parse_value("-273150\n", ValueKind::gauge);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Value::of_signed(-273150));
  v = hwmon::parse_value("+42", ValueKind::gauge);  // ParseFloat takes a '+'
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Value::of_signed(42));
  v = hwmon::parse_value("-9223372036854775808", ValueKind::gauge);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_int64(), std::numeric_limits<std::int64_t>::min());

  // Counters up to 2^64-1 are values, not errors.
  v = hwmon::parse_value("18446744073709551000\n", ValueKind::counter);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Value::of_unsigned(18446744073709551000ULL));
  EXPECT_EQ(format_value(*v, {1, -6}), "18446744073709.551");
  v = hwmon::parse_value("18446744073709551615", ValueKind::gauge);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Value::of_unsigned(18446744073709551615ULL));
  v = hwmon::parse_value("-5", ValueKind::counter);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Value::of_signed(-5));

  auto code = [](std::string_view text) {
    auto r = hwmon::parse_value(text, ValueKind::gauge);
    return r ? std::error_code() : r.error().code;
  };
  EXPECT_EQ(code(""), std::errc::invalid_argument);
  EXPECT_EQ(code("\n"), std::errc::invalid_argument);
  EXPECT_EQ(code("N/A\n"), std::errc::invalid_argument);
  EXPECT_EQ(code(" 42"), std::errc::invalid_argument);
  EXPECT_EQ(code("42 "), std::errc::invalid_argument);
  EXPECT_EQ(code("1.5"), std::errc::invalid_argument);
  EXPECT_EQ(code("0x10"), std::errc::invalid_argument);
  EXPECT_EQ(code("+-5"), std::errc::invalid_argument);
  EXPECT_EQ(code("--5"), std::errc::invalid_argument);
  EXPECT_EQ(code("-"), std::errc::invalid_argument);
  EXPECT_EQ(code("18446744073709551616"), std::errc::result_out_of_range);
  EXPECT_EQ(code("-9223372036854775809"), std::errc::result_out_of_range);
  EXPECT_EQ(code("123456789012345678901234567890"), std::errc::result_out_of_range);

  EXPECT_EQ(*hwmon::parse_value("1\n", ValueKind::beep_flag), Value::of_signed(1));
  EXPECT_EQ(*hwmon::parse_value("0\n", ValueKind::beep_flag), Value::of_signed(0));
  EXPECT_EQ(*hwmon::parse_value("yes", ValueKind::beep_flag), Value::of_signed(0));
}

TEST(HwmonParse, DescribesMetricsLikeNodeExporter) {
  struct Case {
    std::string_view type, property;
    bool bare;
    std::string_view name;
    Scale scale;
    std::string_view help;
  };
  // clang-format off
  const Case cases[] = {
      {"temp", "input", false, "node_hwmon_temp_celsius", {1, -3},
       "Hardware monitor for temperature (input)"},
      {"temp", "", false, "node_hwmon_temp_celsius", {1, -3},
       "Hardware monitor for temperature (input)"},
      {"temp", "crit_alarm", false, "node_hwmon_temp_crit_alarm_celsius", {1, -3},
       "Hardware monitor for temperature (crit_alarm)"},
      {"temp", "type", false, "node_hwmon_temp_type", {1, 0},
       "Hardware monitor temp element type"},
      {"temp", "alarm", false, "node_hwmon_temp_alarm", {1, 0},
       "Hardware sensor alarm status (temp)"},
      {"temp", "fault", false, "node_hwmon_temp_fault", {1, 0},
       "Hardware sensor fault status (temp)"},
      {"temp", "beep", false, "node_hwmon_temp_beep_enabled", {1, 0},
       "Hardware monitor sensor has beeping enabled"},
      {"temp", "Crit-Hyst", false, "node_hwmon_temp_crit_hyst_celsius", {1, -3},
       "Hardware monitor for temperature (Crit-Hyst)"},
      {"in", "input", false, "node_hwmon_in_volts", {1, -3},
       "Hardware monitor for voltage (input)"},
      {"in", "input", true, "node_hwmon_in_input_volts", {1, -3},
       "Hardware monitor for voltage (input)"},
      {"in", "", true, "node_hwmon_in_volts", {1, -3},
       "Hardware monitor for voltage ()"},
      {"in", "min", false, "node_hwmon_in_min_volts", {1, -3},
       "Hardware monitor for voltage (min)"},
      {"cpu", "vid", false, "node_hwmon_cpu_vid_volts", {1, -3},
       "Hardware monitor for voltage (vid)"},
      {"curr", "input", false, "node_hwmon_curr_amps", {1, -3},
       "Hardware monitor for current (input)"},
      {"energy", "input", false, "node_hwmon_energy_joule_total", {1, -6},
       "Hardware monitor for joules used so far (input)"},
      {"power", "average", false, "node_hwmon_power_average_watt", {1, -6},
       "Hardware monitor for power usage in watts (average)"},
      {"power", "input", false, "node_hwmon_power_watt", {1, -6},
       "Hardware monitor for power usage in watts (input)"},
      {"power", "accuracy", false, "node_hwmon_power_accuracy", {1, -6},
       "Hardware monitor power meter accuracy, as a ratio"},
      {"power", "average_interval_max", false, "node_hwmon_power_average_interval_max_seconds",
       {1, -3}, "Hardware monitor power usage update interval (average_interval_max)"},
      {"humidity", "input", false, "node_hwmon_humidity", {1, -6},
       "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a "
       "percentage) (input)"},
      {"fan", "input", false, "node_hwmon_fan_rpm", {1, 0},
       "Hardware monitor for fan revolutions per minute (input)"},
      {"fan", "target", false, "node_hwmon_fan_target_rpm", {1, 0},
       "Hardware monitor for fan revolutions per minute (target)"},
      {"fan", "div", false, "node_hwmon_fan_div", {1, 0},
       "Hardware monitor fan element div"},
      {"fan", "", false, "node_hwmon_fan", {1, 0},
       "Hardware monitor fan element "},
      {"pwm", "", false, "node_hwmon_pwm", {1, 0},
       "Hardware monitor pwm element "},
      {"pwm", "enable", false, "node_hwmon_pwm_enable", {1, 0},
       "Hardware monitor pwm element enable"},
      {"intrusion", "alarm", false, "node_hwmon_intrusion_alarm", {1, 0},
       "Hardware sensor alarm status (intrusion)"},
      {"intrusion", "beep", false, "node_hwmon_intrusion_beep_enabled", {1, 0},
       "Hardware monitor sensor has beeping enabled"},
      {"beep_enable", "", true, "node_hwmon_beep_enabled", {1, 0},
       "Hardware beep enabled"},
      {"vrm", "", true, "node_hwmon_voltage_regulator_version", {1, 0},
       "Hardware voltage regulator"},
      {"update_interval", "", true, "node_hwmon_update_interval_seconds", {1, -3},
       "Hardware monitor update interval"},
  };
  // clang-format on
  for (const auto& c : cases) {
    auto spec = hwmon::describe_attribute(c.type, c.property, c.bare);
    ASSERT_TRUE(spec) << c.type << "/" << c.property;
    EXPECT_EQ(spec->family.name, c.name) << c.type << "/" << c.property;
    EXPECT_EQ(spec->family.help, c.help) << c.type << "/" << c.property;
    EXPECT_EQ(spec->family.scale, c.scale) << c.type << "/" << c.property;
  }
  auto energy = hwmon::describe_attribute("energy", "input", false);
  EXPECT_EQ(energy->family.type, MetricType::counter);
  EXPECT_EQ(energy->kind, hwmon::ValueKind::counter);
  EXPECT_EQ(hwmon::describe_attribute("temp", "input", false)->family.unit, "°C");
  EXPECT_FALSE(hwmon::describe_attribute("temp", "label", false));
  EXPECT_FALSE(hwmon::describe_attribute("vrm", "foo", true));
  EXPECT_EQ(hwmon::chip_names_family().help, "Annotation metric for human-readable chip names");
  EXPECT_EQ(hwmon::sensor_label_family().help, "Label for given chip and sensor");
}

// ---------------------------------------------------------------------------------------------
// Fixture trees against their goldens (checked against node_exporter 1.5.0).

class HwmonFixture : public ::testing::TestWithParam<std::pair<const char*, std::uint64_t>> {};

TEST_P(HwmonFixture, MatchesGolden) {
  auto [name, first_errors] = GetParam();
  std::string dir = fixture_path(std::string("hwmon/") + name);
  auto d = driver_at(dir + "/sys");
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, first_errors);
  testing::expect_golden(sweep_text(s), dir + "/expected.prom");
  // A steady sweep (plain re-reads) reports the same text as the walk did.
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  EXPECT_EQ(sweep_text(s), sweep_text(sweep_ok(*driver_at(dir + "/sys"))));
}

INSTANTIATE_TEST_SUITE_P(Cases, HwmonFixture,
                         ::testing::Values(std::make_pair("coretemp", 0ULL),
                                           std::make_pair("nct6775", 0ULL),
                                           std::make_pair("mixed", 0ULL),
                                           std::make_pair("malformed", 8ULL)),
                         [](const auto& info) { return std::string(info.param.first); });

TEST(HwmonDriver, MalformedReadingsAreSkippedAndCounted) {
  auto d = driver_at(fixture_path("hwmon/malformed/sys"));
  Sweep s = sweep_ok(*d);
  // Six bad readings each sweep (empty, "N/A", dangling link, 30 digits, a directory,
  // " 128"), plus two found only while walking (a label that is a directory, a class entry
  // that points nowhere).
  EXPECT_EQ(s.errors, 8u);
  std::string text = sweep_text(s);
  const std::string chip = "chip=\"platform_nct6775_2592\"";
  EXPECT_TRUE(has_line(text, "node_hwmon_temp_celsius{" + chip + ",sensor=\"temp1\"} 42"));
  EXPECT_TRUE(has_line(text, "node_hwmon_temp_celsius{" + chip + ",sensor=\"temp8\"} 30"));
  EXPECT_TRUE(has_line(
      text, "node_hwmon_energy_joule_total{" + chip + ",sensor=\"energy2\"} 18446744073709.551"));
  EXPECT_TRUE(has_line(text, "node_hwmon_temp_celsius{chip=\"lm75\",sensor=\"temp1\"} 25.5"));
  for (auto bad : {"temp2", "temp3", "temp4", "temp5", "temp6"}) {
    EXPECT_FALSE(has_line(text, "node_hwmon_temp_celsius{" + chip + ",sensor=\"" + bad + "\"}"))
        << bad;
    EXPECT_EQ(text.find("sensor=\"" + std::string(bad) + "\"}"), std::string::npos) << bad;
  }
  EXPECT_EQ(text.find("node_hwmon_pwm{"), std::string::npos);
  EXPECT_EQ(text.find("sensor=\"temp8\",label"), std::string::npos);

  s.reset();
  ASSERT_TRUE(d->sweep(s));
  EXPECT_EQ(s.errors, 6u);
  EXPECT_EQ(sweep_text(s), text);
}

// ---------------------------------------------------------------------------------------------
// Small trees built per test.

// A hwmon chip laid out as sysfs lays it out: class link, device link, name file.
void add_chip(FakeTree& t, const std::string& hwmon, const std::string& device,
              const std::string& name) {
  std::string dir = "sys/devices/platform/" + device + "/hwmon/" + hwmon;
  t.symlink("../../devices/platform/" + device + "/hwmon/" + hwmon, "sys/class/hwmon/" + hwmon);
  t.symlink("../..", dir + "/device");
  t.write(dir + "/name", name + "\n");
  t.write("sys/devices/platform/" + device + "/power/control", "auto\n");
  t.write(dir + "/power/control", "auto\n");
}

std::string chip_dir(const std::string& hwmon, const std::string& device) {
  return "sys/devices/platform/" + device + "/hwmon/" + hwmon;
}

TEST(HwmonDriver, SourceAbsent) {
  FakeTree t;
  t.mkdir("sys/class/thermal");
  auto d = driver_at(t.root() + "/sys");
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(s.readings.empty());
}

TEST(HwmonDriver, NoChipsIsAnEmptySweep) {
  FakeTree t;
  t.mkdir("sys/class/hwmon");
  Sweep s = sweep_ok(*driver_at(t.root() + "/sys"));
  ASSERT_TRUE(s.catalog);
  EXPECT_TRUE(s.catalog->series.empty());
  EXPECT_TRUE(s.readings.empty());
}

TEST(HwmonDriver, RereadsValuesEverySweep) {
  FakeTree t;
  add_chip(t, "hwmon0", "coretemp.0", "coretemp");
  t.write(chip_dir("hwmon0", "coretemp.0") + "/temp1_input", "40000\n");
  auto d = driver_at(t.root() + "/sys");
  Sweep s = sweep_ok(*d);
  EXPECT_TRUE(has_line(
      sweep_text(s), "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} 40"));
  t.write(chip_dir("hwmon0", "coretemp.0") + "/temp1_input", "-1500\n");
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  EXPECT_TRUE(
      has_line(sweep_text(s),
               "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} -1.5"));
}

TEST(HwmonDriver, CatalogPointerStableUntilDiscoveryChangesIt) {
  FakeTree t;
  add_chip(t, "hwmon0", "coretemp.0", "coretemp");
  t.write(chip_dir("hwmon0", "coretemp.0") + "/temp1_input", "40000\n");
  auto d = driver_at(t.root() + "/sys");
  Sweep s = sweep_ok(*d);
  auto first = s.catalog;
  // Steady sweeps and the periodic rediscovery of an unchanged tree keep the pointer.
  for (int i = 0; i < 130; ++i) {
    s.reset();
    ASSERT_TRUE(d->sweep(s));
    ASSERT_EQ(s.catalog, first) << "sweep " << i;
    ASSERT_EQ(s.readings.size(), 2u);  // chip_names + temp1
  }
  // A new chip shows up at the next periodic rediscovery, with a new catalog.
  add_chip(t, "hwmon1", "nct6775.656", "nct6775");
  t.write(chip_dir("hwmon1", "nct6775.656") + "/fan1_input", "1200\n");
  bool changed = false;
  for (int i = 0; i < 61 && !changed; ++i) {
    s.reset();
    ASSERT_TRUE(d->sweep(s));
    changed = s.catalog != first;
  }
  ASSERT_TRUE(changed);
  EXPECT_TRUE(mentions_chip(*s.catalog, "platform_nct6775_656"));
  EXPECT_TRUE(has_line(sweep_text(s),
                       "node_hwmon_fan_rpm{chip=\"platform_nct6775_656\",sensor=\"fan1\"} 1200"));
  EXPECT_FALSE(mentions_chip(*first, "platform_nct6775_656"));  // the old one is untouched
}

TEST(HwmonDriver, VanishingChipIsCountedThenForgotten) {
  FakeTree t;
  add_chip(t, "hwmon0", "coretemp.0", "coretemp");
  add_chip(t, "hwmon1", "nct6775.656", "nct6775");
  t.write(chip_dir("hwmon0", "coretemp.0") + "/temp1_input", "40000\n");
  t.write(chip_dir("hwmon1", "nct6775.656") + "/fan1_input", "1200\n");
  t.write(chip_dir("hwmon1", "nct6775.656") + "/in0_input", "1000\n");
  // Opening afresh each sweep: a deleted file kept open still reads on tmpfs, whereas a
  // vanished sysfs attribute answers ENODEV through its open descriptor.
  auto d = driver_at(t.root() + "/sys", /*keep_open=*/false);
  Sweep s = sweep_ok(*d);
  auto before = s.catalog;
  EXPECT_TRUE(mentions_chip(*before, "platform_nct6775_656"));
  EXPECT_EQ(s.errors, 0u);

  t.remove("sys/devices/platform/nct6775.656");
  t.remove("sys/class/hwmon/hwmon1");
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  EXPECT_EQ(s.errors, 2u);  // fan1_input, in0_input
  EXPECT_TRUE(has_line(
      sweep_text(s), "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} 40"));

  // The ENOENT of files that used to work triggers a walk at the next sweep.
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  EXPECT_EQ(s.errors, 0u);
  EXPECT_NE(s.catalog, before);
  EXPECT_FALSE(mentions_chip(*s.catalog, "platform_nct6775_656"));
  EXPECT_TRUE(mentions_chip(*s.catalog, "platform_coretemp_0"));
  EXPECT_EQ(s.readings.size(), 2u);
}

TEST(HwmonDriver, VanishingChipIsForgottenWithFilesKeptOpen) {
  FakeTree t;
  add_chip(t, "hwmon0", "coretemp.0", "coretemp");
  add_chip(t, "hwmon1", "nct6775.656", "nct6775");
  t.write(chip_dir("hwmon0", "coretemp.0") + "/temp1_input", "40000\n");
  t.write(chip_dir("hwmon1", "nct6775.656") + "/fan1_input", "1200\n");
  auto d = driver_at(t.root() + "/sys");
  Sweep s = sweep_ok(*d);
  t.remove("sys/devices/platform/nct6775.656");
  t.remove("sys/class/hwmon/hwmon1");
  for (int i = 0; i < 61; ++i) {
    s.reset();
    ASSERT_TRUE(d->sweep(s));
  }
  EXPECT_FALSE(mentions_chip(*s.catalog, "platform_nct6775_656"));
  EXPECT_EQ(s.readings.size(), 2u);
}

TEST(HwmonDriver, WholeSourceVanishing) {
  FakeTree t;
  add_chip(t, "hwmon0", "coretemp.0", "coretemp");
  t.write(chip_dir("hwmon0", "coretemp.0") + "/temp1_input", "40000\n");
  auto d = driver_at(t.root() + "/sys", false);
  Sweep s = sweep_ok(*d);
  t.remove("sys");
  s.reset();
  ASSERT_TRUE(d->sweep(s));  // the file that worked is gone: counted, walk next time
  EXPECT_EQ(s.errors, 1u);
  s.reset();
  auto r = d->sweep(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(HwmonDriver, UnreadableFifoAndDirectoryAreSkipped) {
  FakeTree t;
  add_chip(t, "hwmon0", "nct6775.656", "nct6775");
  std::string dir = chip_dir("hwmon0", "nct6775.656");
  t.write(dir + "/temp1_input", "40000\n");
  t.mkdir(dir + "/temp2_input");  // EISDIR, even for root
  ASSERT_EQ(::mkfifo((t.root() + "/" + dir + "/temp3_input").c_str(), 0644), 0);
  t.write(dir + "/temp4_input", "41000\n", 0);  // chmod 000: unreadable unless root
  auto d = driver_at(t.root() + "/sys");
  for (int i = 0; i < 3; ++i) {
    Sweep s = sweep_ok(*d);
    std::uint64_t expected = ::geteuid() == 0 ? 2 : 3;
    EXPECT_EQ(s.errors, expected);
    EXPECT_TRUE(
        has_line(sweep_text(s),
                 "node_hwmon_temp_celsius{chip=\"platform_nct6775_656\",sensor=\"temp1\"} 40"));
  }
}

TEST(HwmonDriver, SysfsStructureIsNotAReading) {
  FakeTree t;
  add_chip(t, "hwmon0", "acpi_power_meter", "power_meter");
  std::string dir = chip_dir("hwmon0", "acpi_power_meter");
  t.write(dir + "/power1_average", "245000000\n");
  t.write(dir + "/power1_accuracy", "95.0%\n");        // text by the driver's ABI
  t.write(dir + "/power1_model_number", "PM-1000\n");  // text
  t.write(dir + "/temp1_reset_history", "", 0200);     // write-only command
  t.write(dir + "/power2_accuracy", "950000\n");       // a number: reported
  Sweep s = sweep_ok(*driver_at(t.root() + "/sys"));
  EXPECT_EQ(s.errors, 0u);  // "power/" directories and the text files are left out quietly
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text,
                       "node_hwmon_power_average_watt{chip=\"platform_acpi_power_meter\","
                       "sensor=\"power1\"} 245"));
  EXPECT_TRUE(has_line(text,
                       "node_hwmon_power_accuracy{chip=\"platform_acpi_power_meter\","
                       "sensor=\"power2\"} 0.95"));
  EXPECT_EQ(text.find("sensor=\"power1\"} 0.95"), std::string::npos);
  EXPECT_EQ(text.find("reset_history"), std::string::npos);
  EXPECT_EQ(text.find("model_number"), std::string::npos);
  EXPECT_EQ(text.find("sensor=\"power0\""), std::string::npos);
}

TEST(HwmonDriver, DeviceDirectoryAttributesWinAndDuplicatesAreDropped) {
  FakeTree t;
  // Two hwmon directories of one PCI device share the chip label.
  std::string dev = "sys/devices/pci0000:00/0000:00:18.3";
  for (std::string n : {"1", "2"}) {
    t.symlink("../../devices/pci0000:00/0000:00:18.3/hwmon/hwmon" + n, "sys/class/hwmon/hwmon" + n);
    t.symlink("../..", dev + "/hwmon/hwmon" + n + "/device");
    t.write(dev + "/hwmon/hwmon" + n + "/name", "k10temp" + n + "\n");
    t.write(dev + "/hwmon/hwmon" + n + "/temp1_input", n + "000\n");
  }
  t.write(dev + "/temp1_input", "5000\n");
  t.write(dev + "/temp1_label", "fromdev\n");
  t.write(dev + "/temp2_input", "6000\n");
  Sweep s = sweep_ok(*driver_at(t.root() + "/sys"));
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(sweep_text(s),
            "node_hwmon_chip_names{chip=\"pci0000:00_0000:00:18_3\",chip_name=\"k10temp1\"} 1\n"
            "node_hwmon_chip_names{chip=\"pci0000:00_0000:00:18_3\",chip_name=\"k10temp2\"} 1\n"
            "node_hwmon_sensor_label{chip=\"pci0000:00_0000:00:18_3\",label=\"fromdev\","
            "sensor=\"temp1\"} 1\n"
            "node_hwmon_temp_celsius{chip=\"pci0000:00_0000:00:18_3\",sensor=\"temp1\"} 5\n"
            "node_hwmon_temp_celsius{chip=\"pci0000:00_0000:00:18_3\",sensor=\"temp2\"} 6\n");
}

TEST(HwmonDriver, ChipNamesFallBackToNameThenHwmonDir) {
  FakeTree t;
  t.symlink("../../devices/virtual/hwmon/hwmon0", "sys/class/hwmon/hwmon0");
  t.write("sys/devices/virtual/hwmon/hwmon0/name", "Foo-Bar\n");
  t.write("sys/devices/virtual/hwmon/hwmon0/in0_input", "1000\n");
  t.symlink("../../devices/virtual/hwmon/hwmon3", "sys/class/hwmon/hwmon3");
  t.write("sys/devices/virtual/hwmon/hwmon3/name", "\n");
  t.write("sys/devices/virtual/hwmon/hwmon3/temp1_input", "7000\n");
  t.symlink("nowhere", "sys/devices/virtual/hwmon/hwmon3/device");
  // Labels keep their text (only newlines go; invalid UTF-8 becomes U+FFFD); beep_enable
  // is 1 only for exactly "1".
  t.write("sys/devices/virtual/hwmon/hwmon0/in0_label", "  V\377\376core \n");
  t.write("sys/devices/virtual/hwmon/hwmon0/beep_enable", "yes\n");
  t.write("sys/devices/virtual/hwmon/hwmon0/vrm", "91\n");
  t.write("sys/devices/virtual/hwmon/hwmon0/update_interval", "1500\n");
  Sweep s = sweep_ok(*driver_at(t.root() + "/sys"));
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(sweep_text(s),
            "node_hwmon_beep_enabled{chip=\"foo_bar\",sensor=\"beep_enable0\"} 0\n"
            "node_hwmon_chip_names{chip=\"foo_bar\",chip_name=\"foo_bar\"} 1\n"
            "node_hwmon_in_volts{chip=\"foo_bar\",sensor=\"in0\"} 1\n"
            "node_hwmon_sensor_label{chip=\"foo_bar\",label=\"  V\357\277\275core \","
            "sensor=\"in0\"} 1\n"
            "node_hwmon_temp_celsius{chip=\"hwmon3\",sensor=\"temp1\"} 7\n"
            "node_hwmon_update_interval_seconds{chip=\"foo_bar\",sensor=\"update_interval0\"} 1.5\n"
            "node_hwmon_voltage_regulator_version{chip=\"foo_bar\",sensor=\"vrm0\"} 91\n");
}

TEST(HwmonDriver, LogsARepeatingProblemOnce) {
  FakeTree t;
  add_chip(t, "hwmon0", "nct6775.656", "nct6775");
  t.write(chip_dir("hwmon0", "nct6775.656") + "/temp1_input", "N/A\n");
  auto d = driver_at(t.root() + "/sys");
  platform::Log::set_threshold(platform::Level::debug);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 5; ++i) {
    Sweep s = sweep_ok(*d);
    EXPECT_EQ(s.errors, 1u);
  }
  t.write(chip_dir("hwmon0", "nct6775.656") + "/temp1_input", "42000\n");
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 0u);
  std::string log = ::testing::internal::GetCapturedStderr();
  platform::Log::set_threshold(platform::Level::info);
  std::size_t first = log.find("reading skipped");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("reading skipped", first + 1), std::string::npos) << log;
  EXPECT_NE(log.find("temp1_input"), std::string::npos) << log;
  EXPECT_NE(log.find("reading recovered"), std::string::npos) << log;
}

TEST(HwmonDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("hwmon/nct6775/sys"));
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
