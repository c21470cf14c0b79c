#include "accelerators.hpp"

#include <unistd.h>

#include <array>

namespace gridnode::drivers::accelerators {

std::uint32_t add_summary(Catalog& catalog, std::string_view vendor) {
  Labels labels{{"vendor", std::string(vendor)}};
  auto first = static_cast<std::uint32_t>(catalog.series.size());
  catalog.add_series(
      catalog.add_family(
          {"gridnode_accelerators", "Accelerators on this node.", MetricType::gauge, {}, ""}),
      labels);
  catalog.add_series(catalog.add_family({"gridnode_accelerators_busy",
                                         "Accelerators answering and in use (a compute process, or "
                                         "utilisation above 0).",
                                         MetricType::gauge,
                                         {},
                                         ""}),
                     labels);
  catalog.add_series(catalog.add_family({"gridnode_accelerators_idle",
                                         "Accelerators answering and not in use.",
                                         MetricType::gauge,
                                         {},
                                         ""}),
                     labels);
  catalog.add_series(catalog.add_family({"gridnode_accelerator_memory_free_bytes",
                                         "Free memory on the accelerators that answer.",
                                         MetricType::gauge,
                                         {},
                                         "B"}),
                     labels);
  catalog.add_series(catalog.add_family({"gridnode_accelerator_power_headroom_watts",
                                         "Power the answering accelerators may still draw: the sum "
                                         "of power limit minus power draw (in W).",
                                         MetricType::gauge,
                                         {1, -3},
                                         "W"}),
                     labels);
  return first;
}

void push_summary(Sweep& out, std::uint32_t first, const Summary& s) {
  out.readings.push_back({first, Value::of_signed(s.total)});
  out.readings.push_back({first + 1, Value::of_signed(s.busy)});
  out.readings.push_back({first + 2, Value::of_signed(s.idle)});
  out.readings.push_back({first + 3, Value::of_unsigned(s.free_memory_bytes)});
  out.readings.push_back({first + 4, Value::of_signed(s.power_headroom_mw)});
}

std::string host_name() {
  std::array<char, 256> buf{};
  return ::gethostname(buf.data(), buf.size() - 1) == 0 ? std::string(buf.data()) : "";
}

}  // namespace gridnode::drivers::accelerators
