#include "ipmi/freeipmi_bmc.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <span>
#include <mutex>
#include <utility>

#include <freeipmi/freeipmi.h>
#include <ipmi_monitoring.h>
#include <unistd.h>

#include "gridnode/platform/log.hpp"
#include "ipmi/freeipmi_library.hpp"

namespace gridnode::drivers::ipmi {
namespace {

using platform::Level;
using platform::LogLine;

constexpr std::string_view kComponent = "ipmi";

struct FlagName {
  std::string_view name;
  unsigned int bit;
};

// FreeIPMI's -W names (ipmi-sensors(8), "WORKAROUNDS") and their bits, per interface. The
// values are the same in ipmi_monitoring.h and freeipmi/api/ipmi-api.h.
constexpr std::array kLanplusFlags{
    FlagName{"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_AUTHENTICATION_CAPABILITIES},
    FlagName{"intel20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_INTEL_2_0_SESSION},
    FlagName{"supermicro20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUPERMICRO_2_0_SESSION},
    FlagName{"sun20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUN_2_0_SESSION},
    FlagName{"opensesspriv", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE},
    FlagName{"integritycheckvalue",
             IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NON_EMPTY_INTEGRITY_CHECK_VALUE},
    FlagName{"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NO_CHECKSUM_CHECK},
};
constexpr std::array kLanFlags{
    FlagName{"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_AUTHENTICATION_CAPABILITIES},
    FlagName{"idzero", IPMI_WORKAROUND_FLAGS_OUTOFBAND_ACCEPT_SESSION_ID_ZERO},
    FlagName{"forcepermsg", IPMI_WORKAROUND_FLAGS_OUTOFBAND_FORCE_PERMSG_AUTHENTICATION},
    FlagName{"unexpectedauth", IPMI_WORKAROUND_FLAGS_OUTOFBAND_CHECK_UNEXPECTED_AUTHCODE},
    FlagName{"endianseq", IPMI_WORKAROUND_FLAGS_OUTOFBAND_BIG_ENDIAN_SEQUENCE_NUMBER},
    FlagName{"noauthcodecheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_NO_AUTH_CODE_CHECK},
    FlagName{"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_NO_CHECKSUM_CHECK},
};
constexpr std::array kInbandFlags{
    FlagName{"assumeio", IPMI_WORKAROUND_FLAGS_INBAND_ASSUME_IO_BASE_ADDRESS},
    FlagName{"spinpoll", IPMI_WORKAROUND_FLAGS_INBAND_SPIN_POLL},
};

std::string_view interface_name(IpmiInterface i) {
  switch (i) {
    case IpmiInterface::inband:
      return "inband";
    case IpmiInterface::lan:
      return "lan";
    case IpmiInterface::lanplus:
      return "lanplus";
  }
  return "?";
}

// libipmimonitoring's errors as the most specific std::errc: retrying helps with the first
// group (the BMC is slow or gone), not with the second (someone must fix the credentials).
std::errc errc_of_monitoring(int errnum) {
  switch (errnum) {
    case IPMI_MONITORING_ERR_CONNECTION_TIMEOUT:
    case IPMI_MONITORING_ERR_SESSION_TIMEOUT:
    case IPMI_MONITORING_ERR_PASSWORD_VERIFICATION_TIMEOUT:
      return std::errc::timed_out;
    case IPMI_MONITORING_ERR_USERNAME_INVALID:
    case IPMI_MONITORING_ERR_PASSWORD_INVALID:
    case IPMI_MONITORING_ERR_K_G_INVALID:
    case IPMI_MONITORING_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
    case IPMI_MONITORING_ERR_PRIVILEGEL_LEVEL_CANNOT_BE_OBTAINED:
    case IPMI_MONITORING_ERR_PERMISSION:
      return std::errc::permission_denied;
    case IPMI_MONITORING_ERR_HOSTNAME_INVALID:
    case IPMI_MONITORING_ERR_AUTHENTICATION_TYPE_UNAVAILABLE:
    case IPMI_MONITORING_ERR_IPMI_2_0_UNAVAILABLE:
    case IPMI_MONITORING_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
      return std::errc::invalid_argument;
    case IPMI_MONITORING_ERR_BMC_BUSY:
      return std::errc::device_or_resource_busy;
    case IPMI_MONITORING_ERR_OUT_OF_MEMORY:
      return std::errc::not_enough_memory;
    default:
      return std::errc::io_error;
  }
}

// Whether a libipmimonitoring error says the BMC itself could not be reached or let us in
// (then nothing else is tried this round).
bool is_session_error(int errnum) {
  std::errc e = errc_of_monitoring(errnum);
  return e == std::errc::timed_out || e == std::errc::permission_denied ||
         e == std::errc::invalid_argument || errnum == IPMI_MONITORING_ERR_SYSTEM_ERROR;
}

std::errc errc_of_ctx(int errnum) {
  switch (errnum) {
    case IPMI_ERR_SESSION_TIMEOUT:
    case IPMI_ERR_CONNECTION_TIMEOUT:
    case IPMI_ERR_PASSWORD_VERIFICATION_TIMEOUT:
    case IPMI_ERR_DRIVER_TIMEOUT:
      return std::errc::timed_out;
    case IPMI_ERR_USERNAME_INVALID:
    case IPMI_ERR_PASSWORD_INVALID:
    case IPMI_ERR_K_G_INVALID:
    case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
    case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
    case IPMI_ERR_PERMISSION:
      return std::errc::permission_denied;
    case IPMI_ERR_DEVICE_NOT_FOUND:
      return std::errc::no_such_file_or_directory;
    case IPMI_ERR_BMC_BUSY:
      return std::errc::device_or_resource_busy;
    case IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED:
      return std::errc::function_not_supported;
    default:
      return std::errc::io_error;
  }
}

std::string sensor_type_text(const FreeIpmiLibrary& lib_, int type) {
  if (type >= 0 && type <= IPMI_SENSOR_TYPE_FRU_STATE) {
    return lib_.ipmi_sensor_types[type];
  }
  if (type >= IPMI_SENSOR_TYPE_OEM_MIN && type <= IPMI_SENSOR_TYPE_OEM_MAX) {
    return *lib_.ipmi_oem_sensor_type;
  }
  return "Unrecognized";
}

SensorState state_of(int s) {
  switch (s) {
    case IPMI_MONITORING_STATE_NOMINAL:
      return SensorState::nominal;
    case IPMI_MONITORING_STATE_WARNING:
      return SensorState::warning;
    case IPMI_MONITORING_STATE_CRITICAL:
      return SensorState::critical;
    default:
      return SensorState::unknown;
  }
}

SensorState state_of_interpret(unsigned int s) {
  switch (s) {
    case IPMI_INTERPRET_STATE_NOMINAL:
      return SensorState::nominal;
    case IPMI_INTERPRET_STATE_WARNING:
      return SensorState::warning;
    case IPMI_INTERPRET_STATE_CRITICAL:
      return SensorState::critical;
    default:
      return SensorState::unknown;
  }
}

// ipmimonitoring's unit texts and collector_ipmi.go's choice of family by them.
void classify(int units, int type, SensorReading& r) {
  switch (units) {
    case IPMI_MONITORING_SENSOR_UNITS_CELSIUS:
      r.kind = SensorKind::temperature;
      r.unit = "C";
      return;
    case IPMI_MONITORING_SENSOR_UNITS_FAHRENHEIT:
      r.kind = SensorKind::generic;
      r.unit = "F";
      return;
    case IPMI_MONITORING_SENSOR_UNITS_VOLTS:
      r.kind = SensorKind::voltage;
      r.unit = "V";
      return;
    case IPMI_MONITORING_SENSOR_UNITS_AMPS:
      r.kind = SensorKind::current;
      r.unit = "A";
      return;
    case IPMI_MONITORING_SENSOR_UNITS_RPM:
      r.kind = SensorKind::fan_rpm;
      r.unit = "RPM";
      return;
    case IPMI_MONITORING_SENSOR_UNITS_WATTS:
      r.kind = SensorKind::power;
      r.unit = "W";
      return;
    case IPMI_MONITORING_SENSOR_UNITS_PERCENT:
      r.kind = type == IPMI_MONITORING_SENSOR_TYPE_FAN ? SensorKind::fan_ratio : SensorKind::generic;
      r.unit = "%";
      return;
    default:
      r.kind = SensorKind::generic;
      r.unit.clear();
      return;
  }
}

// "a.b.c.d:port" unless the port is IPMI's own; FreeIPMI takes "host:port" as hostname.
std::string target_of(const IpmiOptions& o) {
  if (o.interface == IpmiInterface::inband) {
    return "inband";
  }
  if (o.port == 623) {
    return o.host;
  }
  return o.host + ":" + std::to_string(o.port);
}

std::string cache_file_name(std::string_view target) {
  std::string name = "sel-sdr-cache-";
  for (char c : target) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    name.push_back(ok ? c : '_');
  }
  return name;
}

struct Settings {
  IpmiOptions options;
  std::string target;
  std::uint8_t privilege = IPMI_PRIVILEGE_LEVEL_OPERATOR;
  unsigned int workaround_flags = 0;
  std::string cache_dir;
};

// RAII for the FreeIPMI contexts a reading opens and closes.
struct IpmiCtx {
  const FreeIpmiLibrary& lib_;
  ipmi_ctx_t ctx = lib_.ipmi_ctx_create();
  ~IpmiCtx() {
    if (ctx != nullptr) {
      lib_.ipmi_ctx_close(ctx);
      lib_.ipmi_ctx_destroy(ctx);
    }
  }
};
struct SdrCtx {
  const FreeIpmiLibrary& lib_;
  ipmi_sdr_ctx_t ctx = lib_.ipmi_sdr_ctx_create();
  bool open = false;
  ~SdrCtx() {
    if (ctx != nullptr) {
      if (open) {
        lib_.ipmi_sdr_cache_close(ctx);
      }
      lib_.ipmi_sdr_ctx_destroy(ctx);
    }
  }
};
struct SelCtx {
  const FreeIpmiLibrary& lib_;
  ipmi_sel_ctx_t ctx = nullptr;
  ~SelCtx() {
    if (ctx != nullptr) {
      lib_.ipmi_sel_ctx_destroy(ctx);
    }
  }
};
struct FiidObj {
  const FreeIpmiLibrary& lib_;
  fiid_obj_t obj;
  FiidObj(const FreeIpmiLibrary& lib, fiid_field_t* tmpl) : lib_(lib), obj(lib_.fiid_obj_create(tmpl)) {}
  ~FiidObj() {
    if (obj != nullptr) {
      lib_.fiid_obj_destroy(obj);
    }
  }
  bool get(const char* field, std::uint64_t& out) const {
    return obj != nullptr && lib_.FIID_OBJ_GET(obj, field, &out) >= 0;
  }
};

struct SelWalk {
  const FreeIpmiLibrary* lib = nullptr;
  ipmi_interpret_ctx_t interpret = nullptr;
  std::vector<SelEntry>* out = nullptr;
  std::size_t skip_first_if = 0;  // 1: the first record is the position's own (checked by caller)
  std::size_t max = 0;
  std::vector<std::pair<std::uint16_t, std::uint32_t>> seen;  // id, time of every record walked
};

std::string record_string(const FreeIpmiLibrary& lib_, ipmi_sel_ctx_t ctx, const char* fmt) {
  char buf[512];
  int n = lib_.ipmi_sel_parse_read_record_string(ctx, fmt, nullptr, 0, buf, sizeof buf,
                                            IPMI_SEL_STRING_FLAGS_IGNORE_UNAVAILABLE_FIELD);
  if (n <= 0) {
    return {};
  }
  return std::string(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

int on_sel_record(ipmi_sel_ctx_t ctx, void* data) {
  auto& walk = *static_cast<SelWalk*>(data);
  const FreeIpmiLibrary& lib_ = *walk.lib;
  SelEntry e;
  if (lib_.ipmi_sel_parse_read_record_id(ctx, nullptr, 0, &e.record_id) < 0) {
    return 0;  // unreadable record: skipped, as ipmi-sel skips it
  }
  if (lib_.ipmi_sel_parse_read_timestamp(ctx, nullptr, 0, &e.timestamp) < 0) {
    e.timestamp = 0;  // a non-timestamped OEM record
  }
  walk.seen.emplace_back(e.record_id, e.timestamp);
  e.sensor = record_string(lib_, ctx, "%s");
  e.sensor_type = record_string(lib_, ctx, "%T");
  e.event = record_string(lib_, ctx, "%E");
  std::string dir = record_string(lib_, ctx, "%k");
  if (dir == "Assertion Event") {
    e.direction = "assertion";
  } else if (dir == "Deassertion Event") {
    e.direction = "deassertion";
  }
  if (walk.interpret != nullptr) {
    std::uint8_t raw[IPMI_SEL_RECORD_MAX_RECORD_LENGTH];
    int len = lib_.ipmi_sel_parse_read_record(ctx, raw, sizeof raw);
    unsigned int state = IPMI_INTERPRET_STATE_UNKNOWN;
    if (len > 0 &&
        lib_.ipmi_interpret_sel(walk.interpret, raw, static_cast<unsigned int>(len), &state) >= 0) {
      e.state = state_of_interpret(state);
    }
  }
  walk.out->push_back(std::move(e));
  return 0;
}

class FreeIpmiBmc final : public Bmc {
 public:
  FreeIpmiBmc(const FreeIpmiLibrary& lib, Settings s) : lib_(lib), s_(std::move(s)) {}
  ~FreeIpmiBmc() override {
    if (mon_ != nullptr) {
      lib_.ipmi_monitoring_ctx_destroy(mon_);
    }
    if (interpret_ != nullptr) {
      lib_.ipmi_interpret_ctx_destroy(interpret_);
    }
  }

  std::string id() const override { return s_.target; }

  bool present() const override {
    if (s_.options.interface != IpmiInterface::inband) {
      return true;
    }
    return ::access(s_.options.device.c_str(), F_OK) == 0;
  }

  void read(const SelPosition& from, std::size_t max_sel, BmcReading& out) override {
    if (!init(out)) {
      return;
    }
    read_sensors(out);
    if (out.failure) {
      return;
    }
    IpmiCtx ctx{lib_};
    if (ctx.ctx == nullptr) {
      out.problems.emplace_back("ipmi_ctx_create failed");
      return;
    }
    if (!open(ctx.ctx, out)) {
      return;
    }
    SdrCtx sdr{lib_};
    open_sdr(ctx.ctx, sdr);
    read_thresholds(sdr, out);
    read_chassis(ctx.ctx, out);
    read_dcmi(ctx.ctx, out);
    read_sel(ctx.ctx, sdr, from, max_sel, out);
  }

 private:
  bool init(BmcReading& out) {
    static std::once_flag once;
    static int init_errnum = 0;
    std::call_once(once, [this] {
      int errnum = 0;
      if (lib_.ipmi_monitoring_init(IPMI_MONITORING_FLAGS_NONE, &errnum) < 0) {
        init_errnum = errnum == 0 ? IPMI_MONITORING_ERR_INTERNAL_ERROR : errnum;
      }
    });
    if (init_errnum != 0) {
      out.failure = platform::Error{std::make_error_code(std::errc::io_error),
                                    std::string("ipmi_monitoring_init: ") +
                                        lib_.ipmi_monitoring_ctx_strerror(init_errnum)};
      return false;
    }
    if (mon_ == nullptr) {
      mon_ = lib_.ipmi_monitoring_ctx_create();
      if (mon_ == nullptr) {
        out.failure = platform::Error{std::make_error_code(std::errc::not_enough_memory),
                                      "ipmi_monitoring_ctx_create"};
        return false;
      }
      // FreeIPMI would otherwise put its SDR cache under the home directory of getpwuid(),
      // not $HOME, which a system service may not have (or may not write).
      if (lib_.ipmi_monitoring_ctx_sdr_cache_directory(mon_, s_.cache_dir.c_str()) < 0) {
        out.failure = platform::Error{std::make_error_code(std::errc::io_error),
                                      "ipmi_monitoring_ctx_sdr_cache_directory " + s_.cache_dir +
                                          ": " + lib_.ipmi_monitoring_ctx_errormsg(mon_)};
        return false;
      }
    }
    if (interpret_ == nullptr) {
      interpret_ = lib_.ipmi_interpret_ctx_create();
      if (interpret_ != nullptr && lib_.ipmi_interpret_load_sel_config(interpret_, nullptr) < 0) {
        // The library's built-in defaults stay in force without the config file.
        platform::log(Level::debug, kComponent,
                      LogLine("freeipmi_interpret_sel.conf not loaded, defaults used"));
      }
    }
    return true;
  }

  ipmi_monitoring_ipmi_config monitoring_config() {
    ipmi_monitoring_ipmi_config c{};
    const IpmiOptions& o = s_.options;
    c.driver_type = -1;
    c.protocol_version = -1;
    c.authentication_type = -1;
    c.cipher_suite_id = -1;
    if (o.interface == IpmiInterface::inband) {
      c.driver_type = IPMI_MONITORING_DRIVER_TYPE_OPENIPMI;
      c.driver_device = const_cast<char*>(o.device.c_str());
    } else {
      c.protocol_version = o.interface == IpmiInterface::lanplus
                               ? IPMI_MONITORING_PROTOCOL_VERSION_2_0
                               : IPMI_MONITORING_PROTOCOL_VERSION_1_5;
      c.username = const_cast<char*>(o.username.c_str());
      c.password = const_cast<char*>(o.password.c_str());
      c.cipher_suite_id = o.cipher_suite_id;
      // libipmimonitoring counts privilege from 0 (user); IPMI from 2.
      c.privilege_level = s_.privilege - IPMI_PRIVILEGE_LEVEL_USER;
      c.session_timeout_len = static_cast<int>(session_timeout());
      c.retransmission_timeout_len = static_cast<int>(retransmission_timeout());
    }
    c.workaround_flags = s_.workaround_flags;
    return c;
  }

  unsigned int session_timeout() const {
    return static_cast<unsigned int>(std::max<std::int64_t>(s_.options.timeout.count(), 100));
  }
  // FreeIPMI wants the retransmission timeout below the session's.
  unsigned int retransmission_timeout() const {
    return std::clamp(session_timeout() / 4, 50u, 1000u);
  }

  void read_sensors(BmcReading& out) {
    ipmi_monitoring_ipmi_config config = monitoring_config();
    const char* host =
        s_.options.interface == IpmiInterface::inband ? nullptr : s_.target.c_str();
    unsigned int flags = 0;
    int n = lib_.ipmi_monitoring_sensor_readings_by_record_id(mon_, host, &config, flags, nullptr, 0,
                                                         nullptr, nullptr);
    if (n < 0 && !is_session_error(lib_.ipmi_monitoring_ctx_errnum(mon_))) {
      // A stale or broken SDR cache (the BMC's SDR changed under it): build it again, once.
      flags |= IPMI_MONITORING_SENSOR_READING_FLAGS_REREAD_SDR_CACHE;
      n = lib_.ipmi_monitoring_sensor_readings_by_record_id(mon_, host, &config, flags, nullptr, 0,
                                                       nullptr, nullptr);
    }
    if (n < 0) {
      int errnum = lib_.ipmi_monitoring_ctx_errnum(mon_);
      std::string what = std::string("BMC ") + s_.target + ": " + lib_.ipmi_monitoring_ctx_errormsg(mon_);
      if (is_session_error(errnum)) {
        out.failure = platform::Error{std::make_error_code(errc_of_monitoring(errnum)), what};
      } else {
        out.problems.push_back("sensors: " + what);
      }
      return;
    }
    out.sensors.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      SensorReading r;
      int id = lib_.ipmi_monitoring_sensor_read_record_id(mon_);
      int type = lib_.ipmi_monitoring_sensor_read_sensor_type(mon_);
      const char* name = lib_.ipmi_monitoring_sensor_read_sensor_name(mon_);
      int state = lib_.ipmi_monitoring_sensor_read_sensor_state(mon_);
      int units = lib_.ipmi_monitoring_sensor_read_sensor_units(mon_);
      int reading_type = lib_.ipmi_monitoring_sensor_read_sensor_reading_type(mon_);
      void* reading = lib_.ipmi_monitoring_sensor_read_sensor_reading(mon_);
      if (id >= 0) {
        r.record_id = static_cast<std::uint32_t>(id);
        r.name = name != nullptr ? name : "";
        r.type = sensor_type_text(lib_, type);
        r.state = state_of(state);
        classify(units, type, r);
        if (reading != nullptr) {
          switch (reading_type) {
            case IPMI_MONITORING_SENSOR_READING_TYPE_DOUBLE:
              r.has_value = true;
              r.value = *static_cast<double*>(reading);
              break;
            case IPMI_MONITORING_SENSOR_READING_TYPE_UNSIGNED_INTEGER32:
              r.has_value = true;
              r.value = *static_cast<std::uint32_t*>(reading);
              break;
            case IPMI_MONITORING_SENSOR_READING_TYPE_UNSIGNED_INTEGER8_BOOL:
              r.has_value = true;
              r.value = *static_cast<std::uint8_t*>(reading);
              break;
            default:
              break;
          }
          if (r.has_value && !std::isfinite(r.value)) {
            r.has_value = false;
          }
        }
        out.sensors.push_back(std::move(r));
      }
      if (lib_.ipmi_monitoring_sensor_iterator_next(mon_) == 0) {
        break;
      }
    }
    lib_.ipmi_monitoring_sensor_iterator_destroy(mon_);
    out.sensors_ok = true;
  }

  bool open(ipmi_ctx_t ctx, BmcReading& out) {
    const IpmiOptions& o = s_.options;
    int rc = 0;
    switch (o.interface) {
      case IpmiInterface::inband:
        rc = lib_.ipmi_ctx_open_inband(ctx, IPMI_DEVICE_OPENIPMI, 0, 0, 0, o.device.c_str(),
                                  s_.workaround_flags, IPMI_FLAGS_DEFAULT);
        break;
      case IpmiInterface::lan:
        rc = lib_.ipmi_ctx_open_outofband(ctx, s_.target.c_str(), o.username.c_str(),
                                     o.password.c_str(), IPMI_AUTHENTICATION_TYPE_MD5,
                                     s_.privilege, session_timeout(), retransmission_timeout(),
                                     s_.workaround_flags, IPMI_FLAGS_DEFAULT);
        break;
      case IpmiInterface::lanplus:
        rc = lib_.ipmi_ctx_open_outofband_2_0(ctx, s_.target.c_str(), o.username.c_str(),
                                         o.password.c_str(), nullptr, 0, s_.privilege,
                                         o.cipher_suite_id, session_timeout(),
                                         retransmission_timeout(), s_.workaround_flags,
                                         IPMI_FLAGS_DEFAULT);
        break;
    }
    if (rc < 0) {
      int errnum = lib_.ipmi_ctx_errnum(ctx);
      std::string what = std::string("BMC ") + s_.target + ": " + lib_.ipmi_ctx_errormsg(ctx);
      std::errc e = errc_of_ctx(errnum);
      if (e == std::errc::timed_out || e == std::errc::permission_denied) {
        out.failure = platform::Error{std::make_error_code(e), what};
      } else {
        out.problems.push_back("session: " + what);
      }
      return false;
    }
    return true;
  }

  void read_chassis(ipmi_ctx_t ctx, BmcReading& out) {
    FiidObj rs(lib_, lib_.tmpl_cmd_get_chassis_status_rs);
    std::uint64_t on = 0;
    if (rs.obj == nullptr || lib_.ipmi_cmd_get_chassis_status(ctx, rs.obj) < 0 ||
        !rs.get("current_power_state.power_is_on", on)) {
      out.problems.push_back(std::string("chassis status: ") + lib_.ipmi_ctx_errormsg(ctx));
      return;
    }
    out.chassis_ok = true;
    out.power_on = on != 0;
  }

  void read_dcmi(ipmi_ctx_t ctx, BmcReading& out) {
    FiidObj rs(lib_, lib_.tmpl_cmd_dcmi_get_power_reading_rs);
    std::uint64_t watts = 0;
    if (rs.obj == nullptr) {
      return;
    }
    if (lib_.ipmi_cmd_dcmi_get_power_reading(ctx, IPMI_DCMI_POWER_READING_MODE_SYSTEM_POWER_STATISTICS,
                                        0, rs.obj) < 0) {
      int errnum = lib_.ipmi_ctx_errnum(ctx);
      if (errnum == IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED ||
          errnum == IPMI_ERR_BAD_COMPLETION_CODE) {
        return;  // no DCMI on this BMC: not a failure, just absent
      }
      if (errnum == IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT) {
        // DCMI asks for user privilege; a BMC that wants more for it does not know the command
        // (ipmi_sim's privilege table answers so for every command it lacks). Absent, said once.
        out.notes.push_back("DCMI power reading refused for privilege " + s_.options.privilege +
                            ": no ipmi_dcmi_* (privilege = \"admin\" if this BMC wants it)");
        return;
      }
      out.dcmi_supported = true;
      out.problems.push_back(std::string("DCMI power reading: ") + lib_.ipmi_ctx_errormsg(ctx));
      return;
    }
    out.dcmi_supported = true;
    if (!rs.get("current_power", watts)) {
      out.problems.emplace_back("DCMI power reading: no current_power in the answer");
      return;
    }
    out.dcmi_ok = true;
    out.dcmi_watts = static_cast<double>(watts);
  }

  void open_sdr(ipmi_ctx_t ctx, SdrCtx& sdr) {
    if (sdr.ctx == nullptr) {
      return;
    }
    std::string file = s_.cache_dir + "/" + cache_file_name(s_.target);
    if (lib_.ipmi_sdr_cache_open(sdr.ctx, ctx, file.c_str()) == 0) {
      sdr.open = true;
      return;
    }
    int errnum = lib_.ipmi_sdr_ctx_errnum(sdr.ctx);
    if (errnum != IPMI_SDR_ERR_CACHE_READ_CACHE_DOES_NOT_EXIST &&
        errnum != IPMI_SDR_ERR_CACHE_OUT_OF_DATE && errnum != IPMI_SDR_ERR_CACHE_INVALID) {
      return;
    }
    if (errnum != IPMI_SDR_ERR_CACHE_READ_CACHE_DOES_NOT_EXIST) {
      (void)lib_.ipmi_sdr_cache_delete(sdr.ctx, file.c_str());
    }
    if (lib_.ipmi_sdr_cache_create(sdr.ctx, ctx, file.c_str(), IPMI_SDR_CACHE_CREATE_FLAGS_OVERWRITE,
                              nullptr, nullptr) < 0) {
      platform::log(Level::debug, kComponent,
                    LogLine("SDR cache not built, SEL entries without sensor names")
                        .kv("path", file)
                        .kv("err", lib_.ipmi_sdr_ctx_errormsg(sdr.ctx)));
      return;
    }
    sdr.open = lib_.ipmi_sdr_cache_open(sdr.ctx, ctx, file.c_str()) == 0;
  }

  // The thresholds the SDR gives for each threshold sensor (libipmimonitoring does not say
  // them), decoded by FreeIPMI with the sensor's conversion; for gridnodectl sensors.
  void read_thresholds(SdrCtx& sdr, BmcReading& out) {
    if (!sdr.open) {
      return;
    }
    for (auto& r : out.sensors) {
      if (r.kind == SensorKind::generic || r.record_id > 0xffff ||
          lib_.ipmi_sdr_cache_search_record_id(sdr.ctx, static_cast<std::uint16_t>(r.record_id)) < 0) {
        continue;
      }
      // FreeIPMI decodes all six raw bytes; only those the SDR calls readable are thresholds.
      std::uint8_t readable[6] = {};
      if (lib_.ipmi_sdr_parse_threshold_readable(sdr.ctx, nullptr, 0, &readable[2], &readable[1],
                                                 &readable[0], &readable[3], &readable[4],
                                                 &readable[5]) < 0) {
        continue;  // not a full record of a threshold sensor
      }
      double* t[6] = {};
      if (lib_.ipmi_sdr_parse_thresholds(sdr.ctx, nullptr, 0, &t[2], &t[1], &t[0], &t[3], &t[4],
                                         &t[5]) < 0) {
        continue;
      }
      // Order: lower non-recoverable, critical, non-critical; upper non-critical, critical,
      // non-recoverable (SensorReading::thresholds).
      for (int i = 0; i < 6; ++i) {
        if (t[i] != nullptr) {
          if (readable[i] != 0 && std::isfinite(*t[i])) {
            r.thresholds[i] = *t[i];
          }
          std::free(t[i]);
        }
      }
    }
  }

  void read_sel(ipmi_ctx_t ctx, SdrCtx& sdr, const SelPosition& from, std::size_t max_sel,
                BmcReading& out) {
    FiidObj info(lib_, lib_.tmpl_cmd_get_sel_info_rs);
    std::uint64_t entries = 0;
    std::uint64_t free_space = 0;
    std::uint64_t erased = 0;
    if (info.obj == nullptr || lib_.ipmi_cmd_get_sel_info(ctx, info.obj) < 0 ||
        !info.get("entries", entries) || !info.get("free_space", free_space) ||
        !info.get("most_recent_erase_timestamp", erased)) {
      out.problems.push_back(std::string("SEL info: ") + lib_.ipmi_ctx_errormsg(ctx));
      return;
    }
    out.sel_entries = static_cast<std::uint32_t>(entries);
    out.sel_free_bytes = static_cast<std::uint32_t>(free_space);

    SelPosition position = from;
    if (!position.valid || position.bmc != s_.target) {
      position = SelPosition{};
    } else if (position.erase_timestamp != erased || entries == 0) {
      out.sel_change = SelChange::cleared;
      position = SelPosition{};
    }
    position.bmc = s_.target;
    position.erase_timestamp = static_cast<std::uint32_t>(erased);
    out.sel_position = position;
    if (entries == 0) {
      out.sel_ok = true;
      return;
    }

    SelCtx sel{lib_};
    sel.ctx = lib_.ipmi_sel_ctx_create(ctx, sdr.open ? sdr.ctx : nullptr);
    if (sel.ctx == nullptr) {
      out.problems.emplace_back("ipmi_sel_ctx_create failed");
      return;
    }
    SelWalk walk;
    walk.lib = &lib_;
    walk.interpret = interpret_;
    walk.out = &out.sel_new;
    std::uint16_t start = position.valid ? position.record_id : IPMI_SEL_RECORD_ID_FIRST;
    int n = lib_.ipmi_sel_parse(sel.ctx, start, IPMI_SEL_RECORD_ID_LAST, on_sel_record, &walk);
    bool found = position.valid && n >= 0 && !walk.seen.empty() &&
                 walk.seen.front().first == position.record_id &&
                 walk.seen.front().second == position.timestamp;
    if (position.valid && !found) {
      // The entry we stopped at has gone without an erase: the SEL wrapped or entries were
      // deleted. What is there now is read from the start; duplicates are possible only for
      // entries that were there before and are still there, which a lost position cannot tell.
      out.sel_change = SelChange::lost;
      out.sel_new.clear();
      walk.seen.clear();
      position.valid = false;
      n = lib_.ipmi_sel_parse(sel.ctx, IPMI_SEL_RECORD_ID_FIRST, IPMI_SEL_RECORD_ID_LAST,
                         on_sel_record, &walk);
    } else if (found) {
      out.sel_new.erase(out.sel_new.begin());  // the position's own entry, handed over before
    }
    if (n < 0) {
      out.problems.push_back(std::string("SEL: ") + lib_.ipmi_sel_ctx_errormsg(sel.ctx));
      out.sel_new.clear();
      out.sel_change = SelChange::none;
      out.sel_position = from;
      return;
    }
    if (out.sel_new.size() > max_sel) {
      out.sel_new.resize(max_sel);  // the rest next time, from the last one handed over
    }
    if (!out.sel_new.empty()) {
      position.valid = true;
      position.record_id = out.sel_new.back().record_id;
      position.timestamp = out.sel_new.back().timestamp;
    }
    out.sel_position = position;
    out.sel_ok = true;
  }

  const FreeIpmiLibrary& lib_;
  Settings s_;
  ipmi_monitoring_ctx_t mon_ = nullptr;
  ipmi_interpret_ctx_t interpret_ = nullptr;
};

}  // namespace

platform::Result<unsigned int> parse_workaround_flags(IpmiInterface interface,
                                                      const std::vector<std::string>& names) {
  std::span<const FlagName> table;
  switch (interface) {
    case IpmiInterface::inband:
      table = kInbandFlags;
      break;
    case IpmiInterface::lan:
      table = kLanFlags;
      break;
    case IpmiInterface::lanplus:
      table = kLanplusFlags;
      break;
  }
  unsigned int bits = 0;
  for (const auto& n : names) {
    auto it = std::find_if(table.begin(), table.end(), [&](const FlagName& f) { return f.name == n; });
    if (it == table.end()) {
      std::string known;
      for (const auto& f : table) {
        known += known.empty() ? "" : ", ";
        known += f.name;
      }
      return platform::fail(std::errc::invalid_argument,
                            "workaround flag \"" + n + "\" is not one of " +
                                std::string(interface_name(interface)) + "'s: " + known);
    }
    bits |= it->bit;
  }
  return bits;
}

platform::Result<std::uint8_t> parse_privilege(std::string_view name) {
  if (name == "user") {
    return static_cast<std::uint8_t>(IPMI_PRIVILEGE_LEVEL_USER);
  }
  if (name == "operator") {
    return static_cast<std::uint8_t>(IPMI_PRIVILEGE_LEVEL_OPERATOR);
  }
  if (name == "admin") {
    return static_cast<std::uint8_t>(IPMI_PRIVILEGE_LEVEL_ADMIN);
  }
  return platform::fail(std::errc::invalid_argument,
                        "privilege \"" + std::string(name) + "\" is not user, operator or admin");
}

platform::Result<std::shared_ptr<Bmc>> make_freeipmi_bmc(const IpmiOptions& options,
                                                         const std::string& sdr_cache_dir) {
  Settings s;
  s.options = options;
  s.target = target_of(options);
  s.cache_dir = sdr_cache_dir;
  auto flags = parse_workaround_flags(options.interface, options.workaround_flags);
  if (!flags) {
    return tl::unexpected(flags.error());
  }
  s.workaround_flags = *flags;
  auto priv = parse_privilege(options.privilege);
  if (!priv) {
    return tl::unexpected(priv.error());
  }
  s.privilege = *priv;
  if (options.interface != IpmiInterface::inband && options.host.empty()) {
    return platform::fail(std::errc::invalid_argument,
                          std::string(interface_name(options.interface)) + " needs a host");
  }
  auto lib = freeipmi_library();
  if (!lib) {
    return tl::unexpected(lib.error());
  }
  return std::shared_ptr<Bmc>(std::make_shared<FreeIpmiBmc>(**lib, std::move(s)));
}

}  // namespace gridnode::drivers::ipmi
