#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/wire.hpp"

// A gap record (docs/protocol.md, "Gap records"): signed by the node like a report, it says that
// reports from_seq … to_seq were dropped before they left the node (the spool reached its
// bound), so a receiver can tell "the node dropped them and says so" from "they were lost or
// suppressed on the way". It travels in a frame of kind `gap`, as message || signature.
namespace gridnode::protocol {

inline constexpr std::uint8_t kGapVersion = 1;

struct GapRecord {
  std::string node_id;
  std::uint64_t from_seq = 0;  // first dropped report
  std::uint64_t to_seq = 0;    // last dropped report (>= from_seq)
  std::uint64_t time_ns = 0;   // when they were dropped, Unix ns
  std::string reason;          // "spool full (64 MiB)"
  friend bool operator==(const GapRecord&, const GapRecord&) = default;
};

void encode_gap(const GapRecord& gap, Bytes& out);
[[nodiscard]] platform::Result<GapRecord> decode_gap(std::span<const std::uint8_t> message);

}  // namespace gridnode::protocol
