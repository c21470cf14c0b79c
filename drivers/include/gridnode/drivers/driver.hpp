#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gridnode/platform/metrics.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers {

// The metric vocabulary lives in platform (protocol and the collector share it); drivers speak it
// under their own namespace.
using platform::Catalog;
using platform::Family;
using platform::format_value;
using platform::Labels;
using platform::MetricType;
using platform::Scale;
using platform::Series;
using platform::to_double;
using platform::Value;

struct Reading {
  std::uint32_t series = 0;  // index into the sweep's Catalog::series
  Value value;
};

// Something the hardware said during a sweep that is news rather than a value: an XID error,
// a GPU that fell off the bus. The agent carries each one once into the signed report (as a
// `device` event whose source is the driver) and logs it.
struct DeviceEvent {
  std::uint8_t severity = 4;  // syslog's: 3 err, 4 warning, 5 notice, 6 info
  std::string message;        // for people: "GPU 0 (GPU-…): XID 79"
  Labels fields;              // sorted by key, e.g. {"UUID", …}, {"gpu", "0"}, {"xid", "79"}
};

// The result of one sweep. The sampler owns it and hands it back for the next sweep, so
// `readings` keeps its capacity and a steady-state sweep allocates nothing.
struct Sweep {
  std::shared_ptr<const Catalog> catalog;
  std::vector<Reading> readings;
  std::uint64_t errors = 0;  // readings skipped; the sampler adds them to _errors_total
  std::vector<DeviceEvent> events;  // new since the previous sweep; most sweeps have none

  void reset() {
    readings.clear();
    errors = 0;
    events.clear();
  }
};

// One source of readings. Synchronous, Asio-free, never throws; called by one thread at a time
// (the sampler's worker), never concurrently with itself.
class Driver {
 public:
  virtual ~Driver() = default;
  // "hwmon": the {driver} label of the gridnode_driver_* metrics.
  virtual std::string_view name() const = 0;
  // Fills `out`, which the caller has reset(). Publishes a new catalog only when discovery
  // changed what exists. Fails only when the whole source fails; no_such_file_or_directory
  // means "absent on this host" (not down). A single bad reading is skipped and counted in
  // out.errors.
  [[nodiscard]] virtual platform::Result<void> sweep(Sweep& out) = 0;
};

}  // namespace gridnode::drivers
