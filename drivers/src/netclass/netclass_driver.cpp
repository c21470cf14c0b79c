#include "gridnode/drivers/netclass.hpp"

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "netclass/netclass_parse.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "netclass";

enum class Kind : std::uint8_t { value, speed, up };

// One file node_exporter 1.5.0 exports (collector/netclass_linux.go, procfs sysfs/
// net_class.go), under node_network_<metric>, HELP "Network device property: <metric>".
struct Property {
  std::string_view file;
  std::string_view metric;
  MetricType type = MetricType::gauge;
  Kind kind = Kind::value;
};
constexpr std::array<Property, 17> kProperties{{
    {"addr_assign_type", "address_assign_type"},
    {"carrier", "carrier"},
    {"carrier_changes", "carrier_changes_total", MetricType::counter},
    {"carrier_up_count", "carrier_up_changes_total", MetricType::counter},
    {"carrier_down_count", "carrier_down_changes_total", MetricType::counter},
    {"dev_id", "device_id"},
    {"dormant", "dormant"},
    {"flags", "flags"},
    {"ifindex", "iface_id"},
    {"iflink", "iface_link"},
    {"link_mode", "iface_link_mode"},
    {"mtu", "mtu_bytes"},
    {"name_assign_type", "name_assign_type"},
    {"netdev_group", "net_dev_group"},
    {"speed", "speed_bytes", MetricType::gauge, Kind::speed},
    {"tx_queue_len", "transmit_queue_length"},
    {"type", "protocol_type"},
}};

// Mb/s -> bytes/s: node_exporter's speed * 1000 * 1000 / 8, exact.
constexpr Scale kSpeedBytes{125000, 0};

Family up_family() {
  return {"node_network_up",
          "Value is 1 if operstate is 'up', 0 otherwise.",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family info_family() {
  return {"node_network_info",
          "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family property_family(const Property& p) {
  std::string metric(p.metric);
  return {"node_network_" + metric, "Network device property: " + metric, p.type,
          p.kind == Kind::speed ? kSpeedBytes : Scale{1, 0}, p.kind == Kind::speed ? "B/s" : ""};
}

struct Field {
  Kind kind = Kind::value;
  std::string operstate;  // Kind::up: the info series' operstate label
};
using Plan = ReadingPlan<Field>;

// The plan, and a way for the sweep to ask for a walk when a label it published went stale.
class NetPlan : public Plan {
 public:
  using Plan::Plan;
  void request_walk() { rediscovery_.request(); }
};

// What a file's text says, and whether node_exporter would report it.
struct Parsed {
  std::int64_t value = 0;
  bool relabel = false;  // operstate differs from the published info label
};

platform::Result<Parsed> parse(Plan::Entry& e, std::string_view text) {
  if (e.state.kind == Kind::up) {
    std::string_view state = platform::trim(text);
    return Parsed{state == "up" ? 1 : 0, state != e.state.operstate};
  }
  auto value = netclass::parse_go_int(text);
  if (!value) {
    return tl::unexpected(value.error());
  }
  return Parsed{*value, false};
}

bool regular_file(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// What procfs's parseNetClassIface passes over: a file the kernel refuses to show for this
// device (or that went away).
bool left_out(std::error_code code) {
  return code == std::errc::no_such_file_or_directory || code == std::errc::permission_denied ||
         code == std::errc::operation_not_supported || code == std::errc::invalid_argument ||
         code == std::errc::not_a_directory;
}

class NetclassDriver final : public Driver {
 public:
  explicit NetclassDriver(NetclassOptions options)
      : dir_(options.roots.sys("class/net")),
        plan_(kComponent, options.keep_files_open, "netclass readings refused (permission)"),
        ignore_invalid_speed_(options.ignore_invalid_speed) {
    try {
      ignored_.emplace(options.ignored_devices, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      bad_regex_ = "ignored_devices \"" + options.ignored_devices + "\": " + e.what();
    }
  }

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    if (!ignored_) {
      return platform::fail(std::errc::invalid_argument, bad_regex_);
    }
    auto discover = [this](Walk<Field>& walk) { return this->discover(walk); };
    auto walked = plan_.walk_if_due(out, discover);
    if (!walked) {
      return walked;
    }
    for (auto& e : plan_.entries()) {
      if (e.file.path().empty()) {
        out.readings.push_back(Reading{e.series, e.constant});
        continue;
      }
      auto parsed = plan_.read(e, out, parse);
      if (!parsed) {
        continue;
      }
      if (parsed->relabel) {
        plan_.request_walk();
      }
      if (e.state.kind == Kind::speed && parsed->value < 0 && ignore_invalid_speed_) {
        continue;
      }
      out.readings.push_back(Reading{e.series, Value::of_signed(parsed->value)});
    }
    return {};
  }

 private:
  // Every entry of class/net that is not a regular file (bonding_masters is one) is a device,
  // unless the ignored-devices pattern matches its name. Only regular files of a device are
  // read, as procfs reads them.
  platform::Result<void> discover(Walk<Field>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    for (const auto& device : *names) {
      std::string base = dir_ + "/" + device;
      if (regular_file(base) || std::regex_search(device, *ignored_)) {
        continue;
      }
      struct stat st {};
      if (::stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        ++walk.errors;
        problems_.problem(base, "device skipped", "not a directory");
        continue;
      }
      plan_device(walk, device, base + "/");
    }
    problems_.end();
    return {};
  }

  void plan_device(Walk<Field>& walk, const std::string& device, const std::string& base) {
    Catalog& c = walk.catalog;
    // The info labels, "" where the file is absent or refused (node_exporter's zero value).
    std::string operstate = label(base + "operstate");
    std::uint32_t up = c.add_series(c.add_family(up_family()), {{"device", device}});
    if (regular_file(base + "operstate") && readable(base + "operstate")) {
      walk.read(base + "operstate", up, Field{Kind::up, operstate});
    } else {
      walk.constant(up, Value::of_signed(0));
    }
    Labels info{{"address", label(base + "address")},
                {"broadcast", label(base + "broadcast")},
                {"device", device},
                {"duplex", label(base + "duplex")},
                {"ifalias", label(base + "ifalias")},
                {"operstate", std::move(operstate)}};
    walk.constant(c.add_series(c.add_family(info_family()), std::move(info)), Value::of_signed(1));
    for (const Property& p : kProperties) {
      std::string path = base + std::string(p.file);
      if (!regular_file(path) || !readable(path)) {
        continue;
      }
      auto series = c.add_series(c.add_family(property_family(p)), {{"device", device}});
      walk.read(std::move(path), series, Field{p.kind, {}});
    }
  }

  // Whether discovery plans a file: node_exporter leaves out what the kernel refuses now; a
  // file that fails otherwise is planned, so each sweep counts it.
  bool readable(const std::string& path) {
    auto text = platform::read_small_file(path, plan_.buffer());
    return text || !left_out(text.error().code);
  }

  std::string label(const std::string& path) {
    if (!regular_file(path)) {
      return {};
    }
    // ifalias holds up to 256 bytes (IFALIASZ), more than the plan's buffer.
    auto text = platform::read_small_file(path, label_buf_);
    if (!text) {
      if (!left_out(text.error().code)) {
        problems_.problem(path, "label left empty", text.error().code.message());
      }
      return {};
    }
    return std::string(platform::trim(*text));
  }

  std::string dir_;
  NetPlan plan_;
  bool ignore_invalid_speed_;
  std::optional<std::regex> ignored_;
  std::string bad_regex_;
  std::array<char, 4096> label_buf_{};
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_netclass_driver(NetclassOptions options) {
  return std::make_unique<NetclassDriver>(std::move(options));
}

}  // namespace gridnode::drivers
