#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::ipmi {

// Which ipmi_exporter family a sensor's reading goes to, decided by its unit as
// collector_ipmi.go decides it (RPM, C, A, V, W; % of a fan; everything else is generic).
enum class SensorKind : std::uint8_t {
  temperature,
  fan_rpm,
  fan_ratio,
  voltage,
  current,
  power,
  generic,
};

// A sensor's state as FreeIPMI interprets it (freeipmi_interpret_sensor.conf); ipmi_exporter's
// 0/1/2. unknown: FreeIPMI's N/A (the exporter's NaN): no state sample.
enum class SensorState : std::uint8_t { nominal = 0, warning = 1, critical = 2, unknown = 3 };

struct SensorReading {
  std::uint32_t record_id = 0;  // the SDR record id: ipmi_exporter's {id}
  std::string name;             // {name}
  std::string type;             // FreeIPMI's sensor type text ("Power Supply"): {type}
  SensorKind kind = SensorKind::generic;
  std::string unit;             // for tables: "C", "RPM", "V", "A", "W", "%", ""
  bool has_value = false;       // false: N/A (a discrete sensor)
  double value = 0;             // in the family's unit (a fan ratio in %, as FreeIPMI says it)
  SensorState state = SensorState::unknown;
  // The thresholds (lower non-recoverable, critical, non-critical; upper non-critical,
  // critical, non-recoverable) where the SDR says they are readable; for gridnodectl sensors.
  std::optional<double> thresholds[6];

  bool same_series(const SensorReading& o) const {
    return record_id == o.record_id && name == o.name && type == o.type && kind == o.kind;
  }
};

// Where the driver stands in the BMC's SEL: the last entry it has handed over (its record id
// and timestamp, which together name it: ids are reused after a clear) and the BMC's most
// recent erase time when it was read. Kept in the state directory across restarts.
struct SelPosition {
  bool valid = false;  // false: nothing read yet, the whole SEL is new
  std::string bmc;     // the BMC it belongs to ("inband", "host:port"); another one: invalid
  std::uint16_t record_id = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t erase_timestamp = 0;
  friend bool operator==(const SelPosition&, const SelPosition&) = default;
};

// The position file's text ("gridnode-ipmi-sel 1\nbmc ...\nrecord_id ...\n..."), and back.
std::string format_sel_position(const SelPosition& position);
[[nodiscard]] platform::Result<SelPosition> parse_sel_position(std::string_view text);

struct SelEntry {
  std::uint16_t record_id = 0;
  std::uint32_t timestamp = 0;  // seconds since 1970, or since BMC init when < 0x20000000
  std::string sensor;           // the sensor's name from the SDR ("" when not known)
  std::string sensor_type;      // "Fan"
  std::string event;            // FreeIPMI's event text, "Lower Critical - going low ; ..."
  std::string direction;        // "assertion" / "deassertion" ("" for OEM records)
  SensorState state = SensorState::unknown;  // FreeIPMI's SEL interpretation
};

// What happened to the SEL since the position, as the BMC showed it.
enum class SelChange : std::uint8_t {
  none,     // the position's entry is still there; what follows it is new
  cleared,  // the erase time moved (or the SEL is empty): everything there is new
  lost,     // the position's entry is gone without an erase (wrapped, deleted): read again
};

// One complete reading of the BMC, made by the worker and taken by a sweep.
struct BmcReading {
  // The BMC did not answer at all (no session, wrong password, timeout): nothing else is set.
  std::optional<platform::Error> failure;

  bool sensors_ok = false;
  std::vector<SensorReading> sensors;

  bool chassis_ok = false;
  bool power_on = false;

  bool dcmi_supported = false;  // false: the BMC refused the command as unsupported
  bool dcmi_ok = false;
  double dcmi_watts = 0;

  bool sel_ok = false;
  std::uint32_t sel_entries = 0;
  std::uint32_t sel_free_bytes = 0;
  SelChange sel_change = SelChange::none;
  std::vector<SelEntry> sel_new;  // after the position it was asked from, oldest first
  SelPosition sel_position;       // the position after sel_new

  // Problems with single parts (chassis failed, SEL unreadable), one line each, for the log.
  std::vector<std::string> problems;
  // Things worth one info line that are not failures (DCMI refused for privilege).
  std::vector<std::string> notes;
};

// What the driver asks of a BMC. Implementations block (that is why a worker calls them) and
// must bound every call by their own timeout.
class Bmc {
 public:
  virtual ~Bmc() = default;
  // "127.0.0.1:623" or "inband": the position file's bmc and the log lines' bmc=.
  virtual std::string id() const = 0;
  // Whether the BMC can exist here at all (inband: the device is there). false: the driver is
  // absent.
  virtual bool present() const = 0;
  // Reads sensors, chassis, DCMI and the SEL after `from` into `out` (reset by the caller).
  // `max_sel` bounds sel_new; the rest is read next time.
  virtual void read(const SelPosition& from, std::size_t max_sel, BmcReading& out) = 0;
};

}  // namespace gridnode::drivers::ipmi
