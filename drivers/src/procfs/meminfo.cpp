// /proc/meminfo: node_exporter's meminfo collector, one node_memory_<field> per row.

#include <algorithm>
#include <string>
#include <vector>

#include "procfs/table.hpp"

namespace gridnode::drivers::procfs {
namespace {

constexpr Scale kKibibytes{1024, 0};

class MeminfoTable final : public RowTable<MeminfoTable, MeminfoLine> {
 public:
  explicit MeminfoTable(const platform::Roots& roots) : RowTable(roots.proc("meminfo"), false) {}

  static constexpr std::string_view kUnusable = "unusable key";

  MeminfoLine parse(std::string_view text) const { return parse_meminfo_line(text); }
  bool skip(const MeminfoLine& line) const { return line.kind == MeminfoLine::Kind::blank; }
  std::string_view key(const MeminfoLine& line) const { return line.key; }

  std::uint8_t shape(const MeminfoLine& line) const {
    switch (line.kind) {
      case MeminfoLine::Kind::value:
        return 1;
      case MeminfoLine::Kind::value_kb:
        return 2;
      default:
        return kBad;
    }
  }

  void begin_plan(bool /*present*/) { names_.clear(); }

  void add_series(Catalog& c, const MeminfoLine& line, RowPlan& row) {
    if (row.shape == kBad) {
      return;
    }
    bool kb = line.kind == MeminfoLine::Kind::value_kb;
    std::string name = meminfo_metric_name(line.key, kb);
    // An empty name cannot be exported; a repeated one would be a duplicate sample.
    if (name.empty() || std::find(names_.begin(), names_.end(), name) != names_.end()) {
      return;
    }
    names_.push_back(name);
    std::string field = name.substr(std::string_view("node_memory_").size());
    // node_exporter's meminfo collector calls any field ending in "_total" a counter.
    bool counter = field.size() >= 6 && field.ends_with("_total");
    std::uint32_t f = c.add_family(Family{name, "Memory information field " + field + ".",
                                          counter ? MetricType::counter : MetricType::gauge,
                                          kb ? kKibibytes : Scale{}, kb ? "B" : ""});
    row.first_series = c.add_series(f, {});
  }

  void push(Sweep& out, Emitter& emitter, RowPlan& row, const MeminfoLine& line) {
    emitter.push_value(out, path(), row.key, row.first_series, line.value);
  }

 private:
  std::vector<std::string> names_;  // discovery's scratch: the names given so far
};

}  // namespace

std::unique_ptr<Table> make_meminfo_table(const platform::Roots& roots) {
  return std::make_unique<MeminfoTable>(roots);
}

}  // namespace gridnode::drivers::procfs
