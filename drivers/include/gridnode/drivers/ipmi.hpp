#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers {

namespace ipmi {
class Bmc;  // drivers/src/ipmi/bmc.hpp: what the driver asks the BMC (FreeIPMI, or a test's fake)
}

// How the driver reaches the BMC.
enum class IpmiInterface : std::uint8_t {
  inband,   // the kernel's IPMI device (/dev/ipmi0, OpenIPMI driver)
  lan,      // IPMI 1.5 over UDP (RMCP)
  lanplus,  // IPMI 2.0 over UDP (RMCP+)
};

// The BMC through FreeIPMI's libraries, in-process (libipmimonitoring for the sensors, as
// ipmi_exporter's `ipmimonitoring` does; libfreeipmi for SEL, chassis and DCMI), under
// prometheus-community/ipmi_exporter 1.6's names, labels and HELP texts:
//   ipmi_temperature_celsius / ipmi_fan_speed_rpm / ipmi_fan_speed_ratio / ipmi_voltage_volts /
//   ipmi_current_amperes / ipmi_power_watts{id,name}, each with its ipmi_*_state{id,name}
//   (0 nominal, 1 warning, 2 critical, FreeIPMI's interpretation); ipmi_sensor_value and
//   ipmi_sensor_state{id,name,type} for every other sensor; ipmi_dcmi_power_consumption_watts;
//   ipmi_chassis_power_state; ipmi_sel_logs_count; ipmi_sel_free_space_bytes;
//   ipmi_up{collector="ipmi"|"chassis"|"dcmi"|"sel"}; and ours,
//   gridnode_ipmi_sensor_threshold{id,name,threshold}: a threshold sensor's SDR thresholds.
// A reading the BMC does not give (ipmimonitoring's "N/A", ipmi_exporter's NaN) is absent, not
// NaN. A BMC without DCMI (the command is refused as unsupported) has no ipmi_dcmi_* and no
// ipmi_up{collector="dcmi"}.
//
// Every SEL entry becomes one DeviceEvent, once: the position (last record id and its time,
// the BMC's last erase time) is kept in `state_dir` across restarts; a cleared SEL, or one
// whose last-read entry has gone (wrapped, entries deleted) is said by an event and a log line,
// and read again from its first entry.
//
// The BMC is never waited on by a sweep: one worker thread (CallWorker) reads it, at most once
// per `interval`; a sweep takes the last complete reading and starts the next one. Only the
// driver's first sweep waits, up to `first_wait`, so that `gridnoded --once` shows the BMC.
struct IpmiOptions {
  IpmiInterface interface = IpmiInterface::inband;
  // inband: the device whose absence means "no BMC here" (the driver is absent).
  std::string device = "/dev/ipmi0";
  // lan, lanplus: "host" or "host:port" is built from these.
  std::string host;
  std::uint16_t port = 623;
  std::string username;
  std::string password;  // read from password_file by ipmi_options(); never logged
  // "user", "operator", "admin": the session's privilege level (FreeIPMI's default, operator,
  // reads sensors, SEL, chassis status and DCMI power).
  std::string privilege = "operator";
  std::uint8_t cipher_suite_id = 3;
  // FreeIPMI's -W names: "opensesspriv", "authcap", "intel20", "supermicro20", "sun20",
  // "integritycheckvalue", "nochecksumcheck", "idzero", "forcepermsg", "unexpectedauth",
  // "endianseq", "noauthcodecheck"; for inband "assumeio", "spinpoll".
  std::vector<std::string> workaround_flags;
  // One IPMI session's timeout (FreeIPMI's session-timeout); a BMC that does not answer within
  // it fails that reading.
  std::chrono::milliseconds timeout{5000};
  // How often the worker reads the BMC (at most; never more often than the agent sweeps).
  std::chrono::milliseconds interval{10000};
  // The first sweep's wait for the first reading; later sweeps never wait.
  std::chrono::milliseconds first_wait{5000};
  // Where the SEL position file (ipmi-sel.position) and FreeIPMI's SDR cache (ipmi-sdr-cache/)
  // live. Empty: a private directory under $TMPDIR or /tmp (position then lost on restart).
  std::string state_dir;
  // Tests give a fake BMC here; null: FreeIPMI.
  std::shared_ptr<ipmi::Bmc> bmc;
};

// Never fails and never talks to the BMC here: the worker starts on the first sweep. inband
// without `device`: the sweep says no_such_file_or_directory (absent). A BMC that does not
// answer fails the sweep (down: gridnode_driver_up{driver="ipmi"} 0, with the reason: timed
// out, wrong password, ...) and is retried with backoff (1 s doubling to 5 min); the other
// drivers are not held up.
std::unique_ptr<Driver> make_ipmi_driver(IpmiOptions options);

// The password file's content as a password: refused (permission_denied) when group or others
// may read it (as ssh refuses a private key), or when it is not a regular file; one trailing
// newline ("\n" or "\r\n") is not part of the password.
[[nodiscard]] platform::Result<std::string> read_ipmi_password_file(const std::string& path);

}  // namespace gridnode::drivers
