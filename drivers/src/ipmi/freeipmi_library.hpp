#pragma once

#include <freeipmi/freeipmi.h>
#include <ipmi_monitoring.h>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::ipmi {

// The FreeIPMI entry points the driver calls, each typed as its header declares it.
#define GRIDNODE_FREEIPMI_FUNCTIONS(X)                                                          \
  X(fiid_obj_create) X(fiid_obj_destroy) X(FIID_OBJ_GET) X(ipmi_cmd_dcmi_get_power_reading)   \
  X(ipmi_cmd_get_chassis_status) X(ipmi_cmd_get_sel_info) X(ipmi_ctx_close) X(ipmi_ctx_create) \
  X(ipmi_ctx_destroy) X(ipmi_ctx_errnum) X(ipmi_ctx_errormsg) X(ipmi_ctx_open_inband)          \
  X(ipmi_ctx_open_outofband) X(ipmi_ctx_open_outofband_2_0) X(ipmi_interpret_ctx_create)       \
  X(ipmi_interpret_ctx_destroy) X(ipmi_interpret_load_sel_config) X(ipmi_interpret_sel)        \
  X(ipmi_sdr_cache_close) X(ipmi_sdr_cache_create) X(ipmi_sdr_cache_delete)                    \
  X(ipmi_sdr_cache_open) X(ipmi_sdr_cache_search_record_id) X(ipmi_sdr_parse_thresholds) X(ipmi_sdr_parse_threshold_readable)       \
  X(ipmi_sdr_ctx_create) X(ipmi_sdr_ctx_destroy) X(ipmi_sdr_ctx_errnum) \
  X(ipmi_sdr_ctx_errormsg) X(ipmi_sel_ctx_create) X(ipmi_sel_ctx_destroy)                      \
  X(ipmi_sel_ctx_errormsg) X(ipmi_sel_parse) X(ipmi_sel_parse_read_record)                     \
  X(ipmi_sel_parse_read_record_id) X(ipmi_sel_parse_read_record_string)                        \
  X(ipmi_sel_parse_read_timestamp)
#define GRIDNODE_IPMIMONITORING_FUNCTIONS(X)                                                    \
  X(ipmi_monitoring_ctx_create) X(ipmi_monitoring_ctx_destroy) X(ipmi_monitoring_ctx_errnum)   \
  X(ipmi_monitoring_ctx_errormsg) X(ipmi_monitoring_ctx_sdr_cache_directory)                   \
  X(ipmi_monitoring_ctx_strerror) X(ipmi_monitoring_init)                                      \
  X(ipmi_monitoring_sensor_iterator_destroy) X(ipmi_monitoring_sensor_iterator_next)           \
  X(ipmi_monitoring_sensor_read_record_id) X(ipmi_monitoring_sensor_read_sensor_name)          \
  X(ipmi_monitoring_sensor_read_sensor_reading)                                                \
  X(ipmi_monitoring_sensor_read_sensor_reading_type)                                           \
  X(ipmi_monitoring_sensor_read_sensor_state) X(ipmi_monitoring_sensor_read_sensor_type)       \
  X(ipmi_monitoring_sensor_read_sensor_units) X(ipmi_monitoring_sensor_readings_by_record_id)

// FreeIPMI's libraries (Debian's libfreeipmi17, libipmimonitoring6), loaded with dlopen() the
// first time a BMC is to be read, never linked: they and libgcrypt cost an agent without a BMC
// some 3 MiB of memory. Loaded once per process and kept (never dlclose()d: a hung worker may
// still be inside).
struct FreeIpmiLibrary {
#define GRIDNODE_FREEIPMI_MEMBER(name) decltype(&::name) name = nullptr;
  GRIDNODE_FREEIPMI_FUNCTIONS(GRIDNODE_FREEIPMI_MEMBER)
  GRIDNODE_IPMIMONITORING_FUNCTIONS(GRIDNODE_FREEIPMI_MEMBER)
#undef GRIDNODE_FREEIPMI_MEMBER
  // Data: the response templates and the sensor type names.
  fiid_field_t* tmpl_cmd_get_chassis_status_rs = nullptr;
  fiid_field_t* tmpl_cmd_dcmi_get_power_reading_rs = nullptr;
  fiid_field_t* tmpl_cmd_get_sel_info_rs = nullptr;
  const char* const* ipmi_sensor_types = nullptr;
  const char* const* ipmi_oem_sensor_type = nullptr;  // points at the one string
};

// The process's FreeIPMI, loaded on the first call. Errors: no_such_file_or_directory naming
// the library and the Debian package (not installed), function_not_supported naming a missing
// symbol (another FreeIPMI). Thread-safe.
[[nodiscard]] platform::Result<const FreeIpmiLibrary*> freeipmi_library();

}  // namespace gridnode::drivers::ipmi
