#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gridnode/agent/sampler.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/platform/roots.hpp"
#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::agent {

// Turns the sampler's latest sweeps into report messages: one merged catalog for all drivers
// (rebuilt only when a driver publishes a new catalog, which it signals by a new pointer), one
// value slot per series, driver state changes and the drivers' device events as events. Lives on the loop thread; a
// steady-state build allocates nothing.
class ReportBuilder {
 public:
  explicit ReportBuilder(std::uint32_t keyframe_interval) : encoder_(keyframe_interval) {}

  // Encodes this round as the message for `header` (node, boot, seq, time and prev filled by the
  // caller; catalog and keyframe filled here). Returns true when the catalog changed since the
  // previous build: the receiver needs catalog() before this report.
  bool build(const std::vector<DriverSlot>& slots, protocol::ReportHeader& header,
             protocol::Bytes& message);

  const protocol::EncodedCatalog& catalog() const { return catalog_; }
  // The last report's value slots, one per catalog series (for benchmarks and tests).
  const std::vector<protocol::Slot>& values() const { return values_; }
  // Values present in the last report.
  std::size_t samples() const { return samples_; }
  // The next report carries absolute values.
  void force_keyframe() { encoder_.force_keyframe(); }
  // Events (policy violations, actions) for the next build, after the driver state changes.
  void add_events(std::vector<protocol::Event> events) {
    for (auto& e : events) {
      extra_events_.push_back(std::move(e));
    }
  }

 private:
  bool refresh_catalog(const std::vector<DriverSlot>& slots);
  void collect_events(const std::vector<DriverSlot>& slots);

  std::vector<std::shared_ptr<const platform::Catalog>> seen_;  // per slot, at the last merge
  std::vector<std::size_t> offset_;        // per slot: its first series in the merged catalog
  std::vector<std::uint32_t> up_series_;   // per slot: its gridnode_driver_up series
  std::vector<DriverState> last_state_;    // per slot, as last reported
  bool merged_ = false;
  protocol::EncodedCatalog catalog_;
  std::vector<protocol::Slot> values_;
  std::vector<protocol::Event> events_;
  std::vector<protocol::Event> extra_events_;
  protocol::ReportEncoder encoder_;
  std::size_t samples_ = 0;
};

// The kernel's boot id (procfs sys/kernel/random/boot_id) as 16 bytes.
[[nodiscard]] platform::Result<protocol::BootId> read_boot_id(const platform::Roots& roots);

// This host's name made into a valid node id (invalid characters become '-').
std::string host_node_id();

}  // namespace gridnode::agent
