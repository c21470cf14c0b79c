#pragma once

// The spool's bound as a plan (spool.hpp, "Bound"): which of the oldest segments an append
// drops so that the segment files stay within max_bytes, and the range that the gap record
// written with it must cover. Pure: Spool::append() asks, then writes and removes.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// What dropping one old segment frees and loses.
struct SegmentLoss {
  std::uint64_t bytes = 0;  // the segment file's size
  // Its reports not acknowledged yet, and the seqs they and its unacknowledged gap records
  // cover: [from, to]; to == 0 when it holds nothing unacknowledged.
  std::uint64_t lost = 0;
  std::uint64_t from = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t to = 0;
};

struct EvictionRequest {
  std::uint64_t max_bytes = 0;
  std::uint64_t disk_bytes = 0;  // the segment files' sizes now
  std::size_t segments = 0;      // how many there are, oldest first; the last is appended to
  bool roll = false;             // the append starts a new segment anyway
  std::uint64_t record_bytes = 0;  // the append's own records (report, catalog change)
  std::uint64_t roll_bytes = 0;    // what starting a segment adds (magic, catalog copy)
  // What a gap record adds at most; 0: none is written (no signer), drops still happen.
  std::uint64_t gap_bytes = 0;
  // A range dropped earlier whose gap record could not be written yet (the signer failed).
  std::optional<std::pair<std::uint64_t, std::uint64_t>> pending_gap;
};

struct EvictionPlan {
  std::size_t drops = 0;  // the oldest `drops` segments go, after the write
  std::uint64_t drop_bytes = 0;
  bool roll = false;       // the request's roll, or true when the only segment left must go
  std::uint64_t lost = 0;  // unacknowledged reports dropped
  // The gap record's range; to == 0: none is needed.
  std::uint64_t from = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t to = 0;
  std::uint64_t need = 0;  // bytes the append writes, gap record reserve included
};

// Plans the drops for one append: the fewest oldest segments whose bytes make room for the
// append (and for its gap record, once something unacknowledged goes). `loss_of(i)` says what
// dropping segment i (0: the oldest) loses; it is asked for the dropped ones only, in order.
// no_buffer_space when even an empty spool cannot hold the append.
template <class LossOf>
[[nodiscard]] platform::Result<EvictionPlan> plan_eviction(const EvictionRequest& r,
                                                           LossOf&& loss_of) {
  EvictionPlan plan;
  plan.roll = r.roll;
  if (r.pending_gap) {
    plan.from = r.pending_gap->first;
    plan.to = r.pending_gap->second;
  }
  auto need = [&] {
    return r.record_bytes + (plan.roll ? r.roll_bytes : 0) + (plan.to > 0 ? r.gap_bytes : 0);
  };
  while (r.disk_bytes - plan.drop_bytes + need() > r.max_bytes) {
    const std::size_t droppable = plan.roll ? r.segments : r.segments - 1;
    if (plan.drops < droppable) {
      const SegmentLoss loss = loss_of(plan.drops);
      if (loss.to > 0) {
        plan.from = std::min(plan.from, loss.from);
        plan.to = std::max(plan.to, loss.to);
      }
      plan.lost += loss.lost;
      plan.drop_bytes += loss.bytes;
      ++plan.drops;
      continue;
    }
    if (!plan.roll) {
      // Only the segment appended to is left: start a new one so that it can go.
      plan.roll = true;
      continue;
    }
    return platform::fail(std::errc::no_buffer_space,
                          "spool: a report needing " + std::to_string(need()) +
                              " bytes does not fit in max_bytes " + std::to_string(r.max_bytes));
  }
  plan.need = need();
  return plan;
}

}  // namespace gridnode::agent
