#include "gridnode/drivers/hwmon.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "hwmon/hwmon_parse.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

using platform::Level;
using platform::LogLine;

constexpr std::string_view kComponent = "hwmon";


// node_exporter reads every attribute with one 128-byte read(2) (sysReadFile); a value file
// that fills the buffer is refused (KernelFile's contract), a label is cut there as it does.
constexpr std::size_t kValueBytes = 128;
// `name` files go through os.ReadFile (whole file); sysfs attributes are at most a page.
constexpr std::size_t kNameBytes = 4096;

// Properties that some drivers fill with text rather than a number: acpi_power_meter writes
// power1_accuracy as "95.0%" and power1_model_number/serial_number/oem_info as strings.
// node_exporter's ParseFloat silently drops them on every scrape; we look at them once at
// discovery and leave them out when they are text, instead of counting an error each sweep.
constexpr std::array<std::string_view, 4> kTextProperties = {"accuracy", "model_number",
                                                             "serial_number", "oem_info"};

// What a reading keeps beside its file: how its text becomes a value. Constants (the
// chip-name and label annotations) are plan entries without a file.
struct Sensor {
  hwmon::ValueKind kind = hwmon::ValueKind::gauge;
};
using Plan = ReadingPlan<Sensor, kValueBytes>;

platform::Result<Value> parse_reading(Plan::Entry& e, std::string_view text) {
  return hwmon::parse_value(text, e.state.kind);
}

struct SensorFiles {
  std::string type;
  std::map<std::string, std::string> paths;  // property -> file
};

std::string basename_of(std::string_view path) {
  std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// One discovery walk: fills the plan's Walk.
class Discovery {
 public:
  Discovery(Walk<Sensor>& walk, WalkProblems& problems) : walk_(walk), problems_(problems) {}

  void problem(const std::string& path, const std::string& reason) {
    ++walk_.errors;
    problems_.problem(path, "reading skipped", reason);
  }

  void add_chip(const std::string& dir) {
    std::string chip = chip_label(dir);
    if (chip.empty()) {
      problem(dir, "cannot derive a chip name");
      return;
    }
    if (!chip_name_.empty()) {
      add_constant(hwmon::chip_names_family(), {{"chip", chip}, {"chip_name", chip_name_}}, 1);
    }
    std::map<std::string, SensorFiles> sensors;
    collect(dir, sensors);
    // node_exporter also reads sensors from the device directory (older drivers put them
    // there); a file there replaces the same attribute of the hwmon directory.
    std::string device = dir + "/device";
    struct stat st {};
    if (::stat(device.c_str(), &st) == 0) {
      collect(device, sensors);
    }
    for (auto& [sensor, files] : sensors) {
      add_sensor(chip, sensor, files);
    }
  }

 private:
  // hwmonN follows module load order; the device path is stable, so it comes first, then
  // the `name` file, then hwmonN itself (node_exporter's hwmonName).
  std::string chip_label(const std::string& dir) {
    chip_name_.clear();
    auto raw_name = platform::read_small_file(dir + "/name", name_buf_);
    if (raw_name && !raw_name->empty()) {
      chip_name_ = hwmon::clean_metric_name(*raw_name);
    }
    if (auto device = platform::resolve_path(dir + "/device")) {
      std::string name = hwmon::chip_name_from_device_path(*device);
      if (!name.empty()) {
        return name;
      }
    }
    if (!chip_name_.empty()) {
      return chip_name_;
    }
    if (auto real = platform::resolve_path(dir)) {
      return hwmon::clean_metric_name(basename_of(*real));
    }
    return {};
  }

  void collect(const std::string& dir, std::map<std::string, SensorFiles>& sensors) {
    auto names = platform::list_dir(dir);
    if (!names) {
      problem(dir, names.error().code.message());
      return;
    }
    for (const auto& file : *names) {
      auto attr = hwmon::parse_attribute_name(file);
      if (!attr) {
        continue;
      }
      std::string path = dir + "/" + file;
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) {
        // sysfs's own structure, not an attribute: the runtime-PM directory "power/" of
        // every device matches the type "power".
        if (S_ISDIR(st.st_mode) && attr->bare) {
          continue;
        }
        // A write-only attribute (temp1_reset_history, mode 0200) is a command, not a reading.
        if (S_ISREG(st.st_mode) && (st.st_mode & 0444) == 0 && (st.st_mode & 0222) != 0) {
          continue;
        }
      }
      SensorFiles& s = sensors[attr->sensor];
      s.type = attr->type;
      s.paths[attr->property] = std::move(path);
    }
  }

  void add_sensor(const std::string& chip, const std::string& sensor, const SensorFiles& files) {
    auto label = files.paths.find("label");
    if (label != files.paths.end()) {
      // node_exporter reads a label with its single 128-byte read and cuts it there.
      auto raw = platform::read_small_file(label->second, name_buf_);
      if (raw) {
        std::string text = hwmon::to_valid_utf8(
            hwmon::trim_newlines(raw->substr(0, std::min(raw->size(), kValueBytes))));
        add_constant(hwmon::sensor_label_family(),
                     {{"chip", chip}, {"sensor", sensor}, {"label", std::move(text)}}, 1);
      } else {
        problem(label->second, raw.error().code.message());
      }
    }
    bool has_bare = files.paths.count("") != 0;
    if (files.type == "beep_enable" && !has_bare) {
      // node_exporter compares the missing bare value with "1" and reports 0.
      auto spec = hwmon::describe_attribute(files.type, "", false);
      add_constant(std::move(spec->family), {{"chip", chip}, {"sensor", sensor}}, 0);
      return;
    }
    for (const auto& [property, path] : files.paths) {
      auto spec = hwmon::describe_attribute(files.type, property, has_bare);
      if (!spec) {
        continue;
      }
      if (is_text_property(property) && !holds_number(path, spec->kind)) {
        continue;
      }
      std::uint32_t series =
          add_series(std::move(spec->family), {{"chip", chip}, {"sensor", sensor}});
      if (series == kDuplicate) {
        continue;
      }
      walk_.read(path, series, Sensor{spec->kind});
    }
  }

  static bool is_text_property(std::string_view property) {
    for (auto p : kTextProperties) {
      if (p == property) {
        return true;
      }
    }
    return false;
  }

  bool holds_number(const std::string& path, hwmon::ValueKind kind) {
    std::array<char, kValueBytes> buf{};
    auto raw = platform::read_small_file(path, buf);
    if (!raw) {
      return true;  // unreadable: leave it in the plan, where it is counted
    }
    bool number = hwmon::parse_value(*raw, kind).has_value();
    if (!number) {
      platform::log(Level::debug, kComponent,
                    LogLine("text attribute left out")
                        .kv("path", path)
                        .kv("text", hwmon::trim_newlines(*raw)));
    }
    return number;
  }

  static constexpr std::uint32_t kDuplicate = UINT32_MAX;

  // Two hwmon directories of one device get the same chip label; node_exporter's registry
  // then keeps the first of each duplicate series and drops the rest. So do we.
  std::uint32_t add_series(Family family, Labels labels) {
    std::uint32_t f = walk_.catalog.add_family(std::move(family));
    std::sort(labels.begin(), labels.end());
    if (!seen_.emplace(f, labels).second) {
      return kDuplicate;
    }
    return walk_.catalog.add_series(f, std::move(labels));
  }

  void add_constant(Family family, Labels labels, std::int64_t value) {
    std::uint32_t series = add_series(std::move(family), std::move(labels));
    if (series == kDuplicate) {
      return;
    }
    walk_.constant(series, Value::of_signed(value));
  }

  Walk<Sensor>& walk_;
  WalkProblems& problems_;
  std::set<std::pair<std::uint32_t, Labels>> seen_;
  std::string chip_name_;
  std::array<char, kNameBytes> name_buf_{};
};

class HwmonDriver final : public Driver {
 public:
  explicit HwmonDriver(HwmonOptions options)
      : class_dir_(options.roots.sys("class/hwmon")),
        plan_(kComponent, options.keep_files_open,
              "hwmon readings need root or CAP_DAC_READ_SEARCH") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    return plan_.sweep(out, [this](Walk<Sensor>& walk) { return discover(walk); }, parse_reading);
  }

 private:
  platform::Result<void> discover(Walk<Sensor>& walk) {
    auto entries = platform::list_dir(class_dir_);
    if (!entries) {
      return platform::fail(entries.error().code, entries.error().context);
    }
    problems_.begin();
    Discovery d(walk, problems_);
    for (const auto& entry : *entries) {
      std::string dir = class_dir_ + "/" + entry;
      struct stat st {};
      if (::stat(dir.c_str(), &st) != 0) {
        d.problem(dir, std::error_code(errno, std::generic_category()).message());
        continue;
      }
      if (!S_ISDIR(st.st_mode)) {
        continue;
      }
      d.add_chip(dir);
    }
    problems_.end();
    return {};
  }

  std::string class_dir_;
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_hwmon_driver(HwmonOptions options) {
  return std::make_unique<HwmonDriver>(std::move(options));
}

}  // namespace gridnode::drivers
