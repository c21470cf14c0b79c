#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/metrics.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/wire.hpp"

namespace gridnode::collector {

// The per-node accelerator summary the capacity view reads from each report (docs/jetstream.md,
// "Capacity view"). The agent's accelerator drivers (drivers/src/accelerators.cpp) emit these
// beside dcgm-exporter's per-device series, one series of each per vendor ({vendor}); the view
// adds the vendors up. Accelerators neither busy nor idle are not answering (unhealthy), unless
// a report states kUnhealthy itself. The model is kAccelerators' `modelName` label where it has
// one, else that of dcgm-exporter's per-GPU series. These names are spelled here and nowhere
// else in the collector.
namespace capacity_metrics {
inline constexpr std::string_view kAccelerators = "gridnode_accelerators";  // on the node
inline constexpr std::string_view kBusy = "gridnode_accelerators_busy";     // running work
inline constexpr std::string_view kIdle = "gridnode_accelerators_idle";     // answering, free
inline constexpr std::string_view kUnhealthy = "gridnode_accelerators_unhealthy";
inline constexpr std::string_view kMemoryFree = "gridnode_accelerator_memory_free_bytes";  // sum
inline constexpr std::string_view kPowerHeadroom = "gridnode_accelerator_power_headroom_watts";
inline constexpr std::string_view kModelLabel = "modelName";
// The summary's vendor ("nvidia", "amd", "huawei"): GET /v1/capacity?vendor= counts only its.
inline constexpr std::string_view kVendorLabel = "vendor";
// Without the summary, dcgm-exporter's per-GPU series stand in: one `gpu` label per device,
// free framebuffer in MiB, utilisation in %, power and its enforced limit in W.
inline constexpr std::string_view kDcgmFbFree = "DCGM_FI_DEV_FB_FREE";
inline constexpr std::string_view kDcgmUtil = "DCGM_FI_DEV_GPU_UTIL";
inline constexpr std::string_view kDcgmPower = "DCGM_FI_DEV_POWER_USAGE";
inline constexpr std::string_view kDcgmPowerLimit = "DCGM_FI_DEV_POWER_MGMT_LIMIT";
}  // namespace capacity_metrics

// One vendor's share of a node's summary (a node may hold accelerators of several vendors).
struct VendorCapacity {
  std::uint32_t accelerators = 0;
  std::uint32_t busy = 0;
  std::uint32_t unhealthy = 0;
  double memory_free_bytes = 0;
  double power_headroom_watts = 0;
};

// One node's latest state as the capacity view holds it.
struct NodeCapacity {
  std::string node, region, site, model;
  std::uint32_t accelerators = 0;
  std::uint32_t busy = 0;
  std::uint32_t unhealthy = 0;
  double memory_free_bytes = 0;
  double power_headroom_watts = 0;
  std::uint64_t seq = 0;
  std::uint64_t time_ns = 0;      // when the agent sampled it
  std::uint64_t interval_ns = 0;  // between its last two reports (0: one report seen)
  // By the summary's {vendor} label (dcgm-exporter's series alone: "nvidia"); the node's
  // counts above are their sums.
  std::map<std::string, VendorCapacity, std::less<>> vendors;
  std::uint32_t idle() const { return accelerators > busy + unhealthy ? accelerators - busy - unhealthy : 0; }
  std::string health() const {
    return unhealthy == 0 ? "ok" : unhealthy >= accelerators ? "failed" : "degraded";
  }
};

// A report line of the stream (docs/collector.md) as a NodeCapacity, or nothing for another
// record or a line that does not parse. Pure. The JSON line format: streams written before
// compact records, and synthetic publishers (tests/integration/nats_pub.py).
std::optional<NodeCapacity> parse_capacity(std::string_view line);

enum class CapacityRole : std::uint8_t;

// Reads stream messages of either format: compact stream records (stream_record.hpp), whose
// values it takes straight from the record with the catalog the report names (no JSON is built),
// and JSON lines (parse_capacity). Keeps, per catalog seen, only the few series it reads.
// `fetch`, when given, is asked for a catalog a report names that has not been seen (it may come
// later in a last-per-subject delivery, or have been read before this reader started). Not
// thread-safe: one NATS delivery thread uses it.
class CapacityReader {
 public:
  using Fetch = std::function<std::optional<protocol::Bytes>(const crypto::Digest&)>;
  explicit CapacityReader(Fetch fetch = nullptr) : fetch_(std::move(fetch)) {}

  // A report as its NodeCapacity; nothing for a catalog (kept), a gap or another JSON record.
  // An error for a message that is neither a JSON line nor a readable stream record, or a report
  // whose catalog is unknown: the caller counts it and goes on.
  [[nodiscard]] platform::Result<std::optional<NodeCapacity>> read(
      std::span<const std::uint8_t> message);
  std::size_t catalogs() const { return catalogs_.size(); }

 private:
  struct Wanted {
    std::uint32_t series = 0;
    CapacityRole role{};
    platform::Scale scale;
    std::string gpu, model, vendor;  // the series' `gpu`, `modelName` and `vendor` labels
  };
  struct Roles {
    std::size_t series = 0;      // in the catalog
    std::vector<Wanted> wanted;  // by series index
  };
  [[nodiscard]] platform::Result<const Roles*> add_catalog(std::span<const std::uint8_t> bytes);
  const Roles* roles(const crypto::Digest& digest);

  Fetch fetch_;
  std::map<crypto::Digest, Roles> catalogs_;
};

struct CapacityQuery {
  std::string region, site, model;
  std::string vendor;  // only this vendor's accelerators ("huawei"); empty: all
  std::uint32_t min_free_gpus = 1;
  std::uint64_t min_free_mem_mib = 0;
  std::size_t limit = 100;  // nodes listed at most (the totals count them all)
};

// The nodes' latest states and the answers built from them. Not thread-safe (the loop's).
class CapacityTable {
 public:
  // `stale_after_intervals`: data older than this many of the node's intervals is stale;
  // `default_interval`: assumed until a node's second report shows its interval.
  CapacityTable(double stale_after_intervals, std::chrono::nanoseconds default_interval)
      : stale_after_(stale_after_intervals), default_interval_(default_interval) {}

  // A newer report of a node replaces what the table had; an older one is ignored.
  void apply(NodeCapacity c);

  bool stale(const NodeCapacity& c, std::uint64_t now_ns) const;
  // GET /v1/capacity: {"nodes":[…best first…],"sites":[…],"regions":[…],"total":{…}}
  std::string answer(const CapacityQuery& q, std::uint64_t now_ns) const;
  // GET /v1/nodes/<id>: the node's state, or nothing.
  std::optional<std::string> node(const std::string& id, std::uint64_t now_ns) const;
  // Prometheus text of the totals (the view adds its consumer's own series).
  std::string metrics(std::uint64_t now_ns) const;
  std::size_t size() const { return nodes_.size(); }

 private:
  std::string node_json(const NodeCapacity& c, std::uint64_t now_ns) const;
  double stale_after_;
  std::chrono::nanoseconds default_interval_;
  std::map<std::string, NodeCapacity> nodes_;
};

struct CapacityOptions {
  std::string from;                       // nats://HOST:PORT[,…]
  std::string listen = "127.0.0.1:8474";  // HTTP
  std::string stream = "GRIDNODE_REPORTS";
  double stale_after_intervals = 3;
  std::chrono::milliseconds default_interval{10000};
  std::chrono::milliseconds timeout{5000};
};

// `gridnode-collector capacity`: follows the stream from each node's last record on and answers
// over HTTP (GET /v1/capacity, /v1/nodes/<id>, /metrics). Runs until SIGTERM/SIGINT; exit 0
// then, 2 on bad options or when NATS cannot be reached at start.
int capacity(const CapacityOptions& options);

}  // namespace gridnode::collector
