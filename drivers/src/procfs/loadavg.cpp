// /proc/loadavg (node_exporter's loadavg collector) and /proc/uptime (ours): tables of fixed
// fields, a series per field.

#include <array>
#include <span>

#include "procfs/table.hpp"

namespace gridnode::drivers::procfs {
namespace {

constexpr std::array<FamilySpec, 3> kLoad{{
    {"node_load1", "1m load average.", MetricType::gauge, kHundredths, ""},
    {"node_load5", "5m load average.", MetricType::gauge, kHundredths, ""},
    {"node_load15", "15m load average.", MetricType::gauge, kHundredths, ""},
}};

// Ours, not node_exporter's.
constexpr std::array<FamilySpec, 1> kUptime{{
    {"gridnode_uptime_seconds", "Seconds since the kernel booted (procfs uptime).",
     MetricType::gauge, kHundredths, "s"},
}};

// The first N whitespace-separated fields, each a fixed-point value with two decimals.
template <std::size_t N>
class FieldsTable final : public Table {
 public:
  FieldsTable(std::string path, const std::array<FamilySpec, N>& families)
      : Table(std::move(path), false), families_(families) {}

 protected:
  bool emit_text(std::string_view rest, Sweep& out, Emitter& emitter) override {
    for (std::uint32_t series : series_) {
      emitter.push_hundredths(out, path(), series, next_field(rest));
    }
    return true;
  }

  void plan_text(Catalog& c, bool present, std::string_view /*text*/) override {
    series_.fill(kNoSeries);
    if (present) {
      for (std::size_t i = 0; i < N; ++i) {
        series_[i] = c.add_series(add_family(c, families_[i]), {});
      }
    }
  }

 private:
  const std::array<FamilySpec, N>& families_;
  std::array<std::uint32_t, N> series_{};
};

}  // namespace

std::unique_ptr<Table> make_loadavg_table(const platform::Roots& roots) {
  return std::make_unique<FieldsTable<3>>(roots.proc("loadavg"), kLoad);
}

std::unique_ptr<Table> make_uptime_table(const platform::Roots& roots) {
  return std::make_unique<FieldsTable<1>>(roots.proc("uptime"), kUptime);
}

}  // namespace gridnode::drivers::procfs
