#pragma once

#include <sys/timex.h>

#include <memory>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::drivers {

// node_exporter 1.5.0's timex collector: the kernel's clock discipline state from adjtimex(2)
// with modes 0 (a read; it sets nothing, and needs no capability), once per sweep:
//   node_timex_sync_status                   1 unless adjtimex returned TIME_ERROR (5)
//   node_timex_offset_seconds                offset, ns (STA_NANO) or us, as {1,-9}
//   node_timex_frequency_adjustment_ratio    1 + freq / 2^16 ppm (rounded to 1e-18)
//   node_timex_maxerror_seconds              maxerror us {1,-6}
//   node_timex_estimated_error_seconds       esterror us {1,-6}
//   node_timex_status                        the status bits
//   node_timex_loop_time_constant            constant
//   node_timex_tick_seconds                  tick us {1,-6}
//   node_timex_pps_frequency_hertz           ppsfreq / 2^16 ppm (rounded to 1e-18)
//   node_timex_pps_jitter_seconds            jitter, ns or us, as {1,-9}
//   node_timex_pps_shift_seconds             shift (as node_exporter: the log2 interval)
//   node_timex_pps_stability_hertz           stabil / 2^16 ppm (rounded to 1e-18)
//   node_timex_pps_jitter_total, _pps_calibration_total, _pps_error_total,
//   node_timex_pps_stability_exceeded_total  counters (jitcnt, calcnt, errcnt, stbcnt)
//   node_timex_tai_offset_seconds            tai
// A refused call (EPERM: a system call filter, e.g. systemd's ProtectClock=yes, which filters
// adjtimex even as a read) fails the sweep with permission_denied and a message that says so;
// no value is reported then.
struct TimexOptions {
  // The system call. Tests give a fake; production leaves the real one.
  int (*adjtimex)(struct ::timex*) = ::adjtimex;
};

std::unique_ptr<Driver> make_timex_driver(TimexOptions options = {});

}  // namespace gridnode::drivers
