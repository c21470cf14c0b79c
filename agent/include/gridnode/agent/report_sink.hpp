#pragma once

// The two relations between the Reporter and the spool, named: the Reporter hands every signed
// report to a ReportSink (the daemon's spool writer, or a report file), and the spool has its
// gap records signed by a GapSigner (the Reporter, which holds the node key). Neither calls the
// other through a callback set up elsewhere.

#include <cstdint>
#include <span>

#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"
#include "gridnode/protocol/wire.hpp"

namespace gridnode::agent {

class ReportSink {
 public:
  virtual ~ReportSink() = default;
  // One signed report, on the Reporter's (the loop's) thread. `catalog` is empty unless the
  // catalog changed with this report (the receiver needs it first); `envelope` is the signed
  // report; both are valid for the call only.
  virtual void on_report(std::span<const std::uint8_t> catalog,
                         std::span<const std::uint8_t> envelope,
                         const protocol::ReportHeader& header) = 0;
};

class GapSigner {
 public:
  virtual ~GapSigner() = default;
  // The gap record's signed envelope (message || signature). Called on the spool's append()
  // thread with the spool's lock held: must not call back into the spool.
  [[nodiscard]] virtual platform::Result<protocol::Bytes> sign_gap(
      const protocol::GapRecord& gap) = 0;
};

}  // namespace gridnode::agent
