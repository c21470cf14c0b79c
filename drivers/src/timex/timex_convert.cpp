#include "timex/timex_convert.hpp"

#include <cstdint>

namespace gridnode::drivers::timex {
namespace {

// Scaled ppm: a frequency in units of 2^-16 ppm. x / (2^16 * 10^6) = x * 5^16 * 10^-22 needs
// 22 decimals, and the protocol carries at most 18 (protocol/src/catalog.cpp): units of 10^-18,
// rounded, keep the value to 7 significant digits of one 2^-16 ppm step and exact for whole ppm.
constexpr Scale kScaledPpm{1, -18};
constexpr Scale kMicro{1, -6};
constexpr Scale kNano{1, -9};
constexpr Scale kOne{1, 0};
// The ratio 1 + freq / 2^16 ppm needs 10^22 to be exact, more than 64 bits hold: 10^-18 is
// finer than the float64 node_exporter computes.
constexpr Scale kRatio{1, -18};

Family gauge(const char* name, const char* help, Scale scale, const char* unit) {
  return {name, help, MetricType::gauge, scale, unit};
}
Family counter(const char* name, const char* help) {
  return {name, help, MetricType::counter, kOne, ""};
}

Value wide(std::int64_t v, std::int64_t mul) {
  return Value::of_signed(static_cast<std::int64_t>(static_cast<__int128>(v) * mul));
}

// x / (2^16 * 10^6) in units of 10^-18: x * 10^12 / 2^16, rounded half away from zero.
std::int64_t scaled_ppm_e18(std::int64_t x) {
  __int128 scaled = static_cast<__int128>(x) * 1'000'000'000'000;
  __int128 half = scaled >= 0 ? 32768 : -32768;
  return static_cast<std::int64_t>((scaled + half) / 65536);
}

}  // namespace

const std::array<Family, kFamilies>& families() {
  static const std::array<Family, kFamilies> kAll{{
      gauge("node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).", kOne, ""),
      gauge("node_timex_offset_seconds", "Time offset in between local system and reference clock.",
            kNano, "s"),
      gauge("node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.", kRatio,
            ""),
      gauge("node_timex_maxerror_seconds", "Maximum error in seconds.", kMicro, "s"),
      gauge("node_timex_estimated_error_seconds", "Estimated error in seconds.", kMicro, "s"),
      gauge("node_timex_status", "Value of the status array bits.", kOne, ""),
      gauge("node_timex_loop_time_constant", "Phase-locked loop time constant.", kOne, ""),
      gauge("node_timex_tick_seconds", "Seconds between clock ticks.", kMicro, "s"),
      gauge("node_timex_pps_frequency_hertz", "Pulse per second frequency.", kScaledPpm, "Hz"),
      gauge("node_timex_pps_jitter_seconds", "Pulse per second jitter.", kNano, "s"),
      gauge("node_timex_pps_shift_seconds", "Pulse per second interval duration.", kOne, "s"),
      gauge("node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.", kScaledPpm, "Hz"),
      counter("node_timex_pps_jitter_total",
              "Pulse per second count of jitter limit exceeded events."),
      counter("node_timex_pps_calibration_total",
              "Pulse per second count of calibration intervals."),
      counter("node_timex_pps_error_total", "Pulse per second count of calibration errors."),
      counter("node_timex_pps_stability_exceeded_total",
              "Pulse per second count of stability limit exceeded events."),
      gauge("node_timex_tai_offset_seconds", "International Atomic Time (TAI) offset.", kOne, "s"),
  }};
  return kAll;
}

std::array<Value, kFamilies> values(int state, const struct ::timex& tx) {
  // offset and jitter are ns with STA_NANO, us without: both become ns.
  std::int64_t to_ns = (tx.status & STA_NANO) != 0 ? 1 : 1000;
  // 1 + freq / (2^16 * 10^6) in units of 10^-18.
  std::int64_t ratio = 1'000'000'000'000'000'000 + scaled_ppm_e18(tx.freq);
  return {{
      Value::of_signed(state == TIME_ERROR ? 0 : 1),
      wide(tx.offset, to_ns),
      Value::of_signed(ratio),
      Value::of_signed(tx.maxerror),
      Value::of_signed(tx.esterror),
      Value::of_signed(tx.status),
      Value::of_signed(tx.constant),
      Value::of_signed(tx.tick),
      Value::of_signed(scaled_ppm_e18(tx.ppsfreq)),
      wide(tx.jitter, to_ns),
      Value::of_signed(tx.shift),
      Value::of_signed(scaled_ppm_e18(tx.stabil)),
      Value::of_signed(tx.jitcnt),
      Value::of_signed(tx.calcnt),
      Value::of_signed(tx.errcnt),
      Value::of_signed(tx.stbcnt),
      Value::of_signed(tx.tai),
  }};
}

}  // namespace gridnode::drivers::timex
