#include "gridnode/drivers/infiniband.hpp"

#include <sys/stat.h>

#include <array>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gridnode/platform/files.hpp"
#include "infiniband/infiniband_parse.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "infiniband";

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/infiniband_linux.go), and the
// file of procfs 0.8's InfiniBandCounters each comes from. Four data counters are kept by the
// kernel in 4-octet words ("divided by 4 unconditionally", per lane): the scale multiplies.
struct CounterSpec {
  std::string_view file;
  std::string_view name;  // after node_infiniband_
  std::string_view help;
  std::uint32_t mul;
};

constexpr std::array<CounterSpec, 22> kCounters{{
    {"excessive_buffer_overrun_errors", "excessive_buffer_overrun_errors_total",
     "Number of times that OverrunErrors consecutive flow control update periods occurred, "
     "each having at least one overrun error.",
     1},
    {"link_downed", "link_downed_total",
     "Number of times the link failed to recover from an error state and went down", 1},
    {"link_error_recovery", "link_error_recovery_total",
     "Number of times the link successfully recovered from an error state", 1},
    {"local_link_integrity_errors", "local_link_integrity_errors_total",
     "Number of times that the count of local physical errors exceeded the threshold specified "
     "by LocalPhyErrors.",
     1},
    {"multicast_rcv_packets", "multicast_packets_received_total",
     "Number of multicast packets received (including errors)", 1},
    {"multicast_xmit_packets", "multicast_packets_transmitted_total",
     "Number of multicast packets transmitted (including errors)", 1},
    {"port_rcv_constraint_errors", "port_constraint_errors_received_total",
     "Number of packets received on the switch physical port that are discarded", 1},
    {"port_rcv_data", "port_data_received_bytes_total",
     "Number of data octets received on all links", 4},
    {"port_rcv_discards", "port_discards_received_total",
     "Number of inbound packets discarded by the port because the port is down or congested", 1},
    {"port_rcv_errors", "port_errors_received_total",
     "Number of packets containing an error that were received on this port", 1},
    {"port_rcv_packets", "port_packets_received_total",
     "Number of packets received on all VLs by this port (including errors)", 1},
    {"port_rcv_remote_physical_errors", "port_receive_remote_physical_errors_total",
     "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.",
     1},
    {"port_rcv_switch_relay_errors", "port_receive_switch_relay_errors_total",
     "Number of packets that could not be forwarded by the switch.", 1},
    {"port_xmit_constraint_errors", "port_constraint_errors_transmitted_total",
     "Number of packets not transmitted from the switch physical port", 1},
    {"port_xmit_data", "port_data_transmitted_bytes_total",
     "Number of data octets transmitted on all links", 4},
    {"port_xmit_discards", "port_discards_transmitted_total",
     "Number of outbound packets discarded by the port because the port is down or congested", 1},
    {"port_xmit_packets", "port_packets_transmitted_total",
     "Number of packets transmitted on all VLs from this port (including errors)", 1},
    {"port_xmit_wait", "port_transmit_wait_total",
     "Number of ticks during which the port had data to transmit but no data was sent during "
     "the entire tick",
     1},
    {"symbol_error", "symbol_error_total",
     "Number of minor link errors detected on one or more physical lanes.", 1},
    {"unicast_rcv_packets", "unicast_packets_received_total",
     "Number of unicast packets received (including errors)", 1},
    {"unicast_xmit_packets", "unicast_packets_transmitted_total",
     "Number of unicast packets transmitted (including errors)", 1},
    {"VL15_dropped", "vl15_dropped_total",
     "Number of incoming VL15 packets dropped due to resource limitations.", 1},
}};

// counters_ext: the 64-bit "legacy" counters of older mlx4 firmware.
constexpr std::array<CounterSpec, 8> kLegacyCounters{{
    {"port_multicast_rcv_packets", "legacy_multicast_packets_received_total",
     "Number of multicast packets received", 1},
    {"port_multicast_xmit_packets", "legacy_multicast_packets_transmitted_total",
     "Number of multicast packets transmitted", 1},
    {"port_rcv_data_64", "legacy_data_received_bytes_total",
     "Number of data octets received on all links", 4},
    {"port_rcv_packets_64", "legacy_packets_received_total",
     "Number of data packets received on all links", 1},
    {"port_unicast_rcv_packets", "legacy_unicast_packets_received_total",
     "Number of unicast packets received", 1},
    {"port_unicast_xmit_packets", "legacy_unicast_packets_transmitted_total",
     "Number of unicast packets transmitted", 1},
    {"port_xmit_data_64", "legacy_data_transmitted_bytes_total",
     "Number of data octets transmitted on all links", 4},
    // sic: node_exporter 1.5.0 says "received" for the transmitted packets too.
    {"port_xmit_packets_64", "legacy_packets_transmitted_total",
     "Number of data packets received on all links", 1},
}};

Family info_family() {
  return {"node_infiniband_info",
          "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family state_family() {
  return {"node_infiniband_state_id",
          "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: "
          "act defer)",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family phys_state_family() {
  return {"node_infiniband_physical_state_id",
          "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: "
          "disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)",
          MetricType::gauge,
          {1, 0},
          ""};
}
Family rate_family() {
  return {"node_infiniband_rate_bytes_per_second",
          "Maximum signal transfer rate",
          MetricType::gauge,
          {1, 0},
          "B/s"};
}
Family counter_family(const CounterSpec& spec) {
  bool bytes = spec.mul != 1;
  return {"node_infiniband_" + std::string(spec.name),
          std::string(spec.help),
          MetricType::counter,
          {spec.mul, 0},
          bytes ? "B" : ""};
}

enum class Kind : std::uint8_t { counter, state, phys_state, rate };
struct PortReading {
  Kind kind = Kind::counter;
};
using Plan = ReadingPlan<PortReading>;

platform::Result<Value> parse_reading(Plan::Entry& e, std::string_view text) {
  switch (e.state.kind) {
    case Kind::state:
    case Kind::phys_state: {
      auto id = infiniband::parse_state_id(text);
      if (!id) {
        return tl::unexpected(id.error());
      }
      return Value::of_unsigned(*id);
    }
    case Kind::rate: {
      auto rate = infiniband::parse_rate(text);
      if (!rate) {
        return tl::unexpected(rate.error());
      }
      return Value::of_unsigned(*rate);
    }
    case Kind::counter:
      break;
  }
  auto value = platform::parse_uint64(text);
  if (!value) {
    return tl::unexpected(value.error());
  }
  return Value::of_unsigned(*value);
}

// What procfs 0.8 treats as "this counter is not there": absent or refused.
bool refused(std::error_code code) {
  return code == std::errc::no_such_file_or_directory || code == std::errc::permission_denied ||
         code == std::errc::operation_not_supported || code == std::errc::invalid_argument;
}

class InfinibandDriver final : public Driver {
 public:
  explicit InfinibandDriver(InfinibandOptions options)
      : dir_(options.roots.sys("class/infiniband")),
        plan_(kComponent, options.keep_files_open,
              "infiniband readings need read access to /sys/class/infiniband") {}

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    return plan_.sweep(
        out, [this](Walk<PortReading>& walk) { return discover(walk); }, parse_reading);
  }

 private:
  platform::Result<void> discover(Walk<PortReading>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected<platform::Error>(std::move(names.error()));
    }
    problems_.begin();
    for (const auto& device : *names) {
      discover_device(walk, device);
    }
    problems_.end();
    return {};
  }

  void discover_device(Walk<PortReading>& walk, const std::string& device) {
    std::string base = dir_ + "/" + device;
    auto board = read_label(base + "/board_id", walk, false);
    auto firmware = board ? read_label(base + "/fw_ver", walk, false) : std::nullopt;
    // Not all InfiniBand drivers provide hca_type (procfs leaves it empty then).
    auto hca = firmware ? read_label(base + "/hca_type", walk, true) : std::nullopt;
    if (!hca) {
      return;
    }
    std::string ports_dir = base + "/ports";
    auto ports = platform::list_dir(ports_dir);
    if (!ports) {
      skipped(walk, ports_dir, ports.error().code);
      return;
    }
    Catalog& c = walk.catalog;
    walk.constant(c.add_series(c.add_family(info_family()), {{"board_id", *board},
                                                             {"device", device},
                                                             {"firmware_version", *firmware},
                                                             {"hca_type", *hca}}),
                  Value::of_unsigned(1));
    for (const auto& port : *ports) {
      auto number = platform::parse_uint64(port);
      if (!number || *number > std::numeric_limits<std::uint32_t>::max()) {
        skipped(walk, ports_dir + "/" + port, std::make_error_code(std::errc::invalid_argument));
        continue;
      }
      discover_port(walk, device, std::to_string(*number), ports_dir + "/" + port);
    }
  }

  void discover_port(Walk<PortReading>& walk, const std::string& device, const std::string& port,
                     const std::string& dir) {
    Catalog& c = walk.catalog;
    Labels labels{{"device", device}, {"port", port}};
    walk.read(dir + "/state", c.add_series(c.add_family(state_family()), labels),
              PortReading{Kind::state});
    walk.read(dir + "/phys_state", c.add_series(c.add_family(phys_state_family()), labels),
              PortReading{Kind::phys_state});
    walk.read(dir + "/rate", c.add_series(c.add_family(rate_family()), labels),
              PortReading{Kind::rate});
    // procfs requires counters/ (the port is an error without it) and takes counters_ext/
    // when it is there.
    if (auto missing = discover_counters(walk, dir + "/counters", kCounters, labels)) {
      skipped(walk, dir + "/counters", *missing);
    }
    if (auto missing = discover_counters(walk, dir + "/counters_ext", kLegacyCounters, labels);
        missing && *missing != std::errc::no_such_file_or_directory) {
      skipped(walk, dir + "/counters_ext", *missing);
    }
  }

  // Plans each regular file of `dir` that node_exporter knows and that reads now as something
  // other than "N/A (no PMA)". The directory's error when it cannot be listed.
  template <std::size_t N>
  std::optional<std::error_code> discover_counters(Walk<PortReading>& walk, const std::string& dir,
                                                   const std::array<CounterSpec, N>& specs,
                                                   const Labels& labels) {
    auto files = platform::list_dir(dir);
    if (!files) {
      return files.error().code;
    }
    Catalog& c = walk.catalog;
    for (const auto& file : *files) {
      const CounterSpec* spec = nullptr;
      for (const auto& s : specs) {
        if (s.file == file) {
          spec = &s;
        }
      }
      std::string path = dir + "/" + file;
      struct stat st {};
      if (spec == nullptr || ::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        continue;
      }
      auto text = platform::read_small_file(path, plan_.buffer());
      if (!text && refused(text.error().code)) {
        continue;
      }
      if (text && infiniband::not_available(*text)) {
        continue;
      }
      // Anything else is planned: a counter that reads but does not parse is counted at
      // every sweep, as a bad reading is.
      walk.read(path, c.add_series(c.add_family(counter_family(*spec)), labels));
    }
    return std::nullopt;
  }

  // A label file, trimmed as SysReadFile does. `optional`: absent is "".
  std::optional<std::string> read_label(const std::string& path, Walk<PortReading>& walk,
                                        bool optional) {
    auto text = platform::read_small_file(path, plan_.buffer());
    if (!text) {
      if (optional && text.error().code == std::errc::no_such_file_or_directory) {
        return std::string();
      }
      skipped(walk, path, text.error().code);
      return std::nullopt;
    }
    return std::string(platform::trim(*text));
  }

  void skipped(Walk<PortReading>& walk, const std::string& path, std::error_code code) {
    ++walk.errors;
    problems_.problem(path, "device skipped", code.message());
  }

  std::string dir_;
  Plan plan_;
  WalkProblems problems_{kComponent};
};

}  // namespace

std::unique_ptr<Driver> make_infiniband_driver(InfinibandOptions options) {
  return std::make_unique<InfinibandDriver>(std::move(options));
}

}  // namespace gridnode::drivers
