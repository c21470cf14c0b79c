#pragma once

#include <cstdint>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::infiniband {

// A port's state or phys_state, "<id>: <name>" ("4: ACTIVE", "5: LinkUp"), as procfs 0.8's
// parseState reads it: exactly one ':', the id an unsigned 32-bit decimal (spaces around it
// allowed). invalid_argument / result_out_of_range otherwise.
[[nodiscard]] platform::Result<std::uint32_t> parse_state_id(std::string_view text);

// A port's rate, "<Gb/s> Gb/sec (<width><speed>)" ("100 Gb/sec (4X EDR)", "2.5 Gb/sec (1X
// SDR)"), in bytes per second: the number before the first space times 125000000, as procfs
// 0.8's parseRate. Computed exactly from the decimal text (the kernel writes N or N.5), so a
// fraction of up to six digits is exact; more digits, no space or no number are
// invalid_argument, a rate beyond 2^64-1 B/s result_out_of_range.
[[nodiscard]] platform::Result<std::uint64_t> parse_rate(std::string_view text);

// Whether a counter's text is the "N/A (no PMA)" that some drivers (i40iw, older mlx4) write
// for counters they cannot read: node_exporter drops such a counter, and so do we.
bool not_available(std::string_view text);

}  // namespace gridnode::drivers::infiniband
