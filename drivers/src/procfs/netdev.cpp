// /proc/net/dev: node_exporter's netdev collector on its /proc/net/dev path,
// node_network_<column>_total{device}.

#include <array>
#include <span>
#include <string>
#include <unordered_set>

#include "procfs/table.hpp"

namespace gridnode::drivers::procfs {
namespace {

// /proc/net/dev's columns under the names node_exporter's netdev collector gives them on its
// /proc/net/dev path (after its legacy() renaming); each becomes node_network_<name>_total.
constexpr std::array<std::string_view, kNetdevColumns> kNetdevNames{
    "receive_bytes",  "receive_packets",  "receive_errs",       "receive_drop",
    "receive_fifo",   "receive_frame",    "receive_compressed", "receive_multicast",
    "transmit_bytes", "transmit_packets", "transmit_errs",      "transmit_drop",
    "transmit_fifo",  "transmit_colls",   "transmit_carrier",   "transmit_compressed"};

class NetdevTable final : public RowTable<NetdevTable, NetdevLine> {
 public:
  explicit NetdevTable(const platform::Roots& roots) : RowTable(roots.proc("net/dev"), true) {}

  // Two header lines, skipped unread as the procfs library does.
  static std::string_view body(std::string_view rest) {
    std::string_view text;
    for (int i = 0; i < 2 && next_line(rest, text); ++i) {
    }
    return rest;
  }

  NetdevLine parse(std::string_view text) const { return parse_netdev_line(text); }
  bool skip(const NetdevLine& line) const { return line.kind == NetdevLine::Kind::blank; }
  std::string_view key(const NetdevLine& line) const { return line.name; }

  std::uint8_t shape(const NetdevLine& line) const {
    if (!line.name.empty() && is_ignored_netdev(line.name)) {
      return kIgnored;
    }
    return line.kind == NetdevLine::Kind::device ? kOk : kBad;
  }

  void end_plan(Catalog& /*c*/) { names_.clear(); }

  // Rows named twice (which the kernel never writes) get no series: the second would be a
  // duplicate sample.
  void add_series(Catalog& c, const NetdevLine& line, RowPlan& row) {
    if (row.shape != kOk || !names_.insert(line.name).second) {
      return;
    }
    for (std::size_t i = 0; i < kNetdevColumns; ++i) {
      std::string key(kNetdevNames[i]);
      bool bytes = key.ends_with("_bytes");
      std::uint32_t f = c.add_family(Family{"node_network_" + key + "_total",
                                            "Network device statistic " + key + ".",
                                            MetricType::counter,
                                            {},
                                            bytes ? "B" : ""});
      std::uint32_t s = c.add_series(f, {{"device", row.key}});
      if (i == 0) {
        row.first_series = s;
      }
    }
  }

  // A device row holds all its 16 counters.
  void push(Sweep& out, Emitter& emitter, RowPlan& row, const NetdevLine& line) {
    push_columns(out, emitter, row, std::span(line.values).first(line.count));
  }

 private:
  // Discovery's scratch: the names given so far (views of the text being planned).
  std::unordered_set<std::string_view> names_;
};

}  // namespace

std::unique_ptr<Table> make_netdev_table(const platform::Roots& roots) {
  return std::make_unique<NetdevTable>(roots);
}

}  // namespace gridnode::drivers::procfs
