#pragma once

#include <cstdint>
#include <string>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/protocol/report.hpp"

// The receiver's view of one node's chain of reports (docs/protocol.md, "Chain"): each report
// carries its sequence number and its predecessor's digest, so a receiver that remembers the
// last (seq, digest) it accepted can tell a missing, replayed, reordered or altered report from
// the next one.
namespace gridnode::protocol {

enum class Link : std::uint8_t {
  first,      // nothing known of this node yet: accepted as the start
  next,       // seq = last + 1 and prev = last digest
  gap,        // seq > last + 1: reports last+1 … seq-1 are missing (accepted, chain moves on)
  duplicate,  // the very report accepted last, again (at-least-once delivery): ignore
  replay,     // seq <= last and not the last report: an old report again, or out of order
  fork,       // seq = last + 1 but prev is not the last digest: altered, or a second writer
};
std::string_view to_string(Link link);

struct ChainCheck {
  Link link = Link::first;
  std::uint64_t missing_from = 0;  // for gap: the first missing seq
  std::uint64_t missing_to = 0;    // for gap: the last missing seq
  // Whether the report extends the chain (first, next, gap): the caller keeps it.
  bool accepted() const { return link == Link::first || link == Link::next || link == Link::gap; }
  std::string describe() const;
};

class ChainVerifier {
 public:
  ChainVerifier() = default;
  // Resumes from a known (seq, digest), e.g. persisted by a collector.
  ChainVerifier(std::uint64_t seq, const crypto::Digest& digest)
      : known_(true), seq_(seq), digest_(digest) {}

  // Classifies the report with header `h` and message digest `digest`, and advances the chain
  // when it is accepted.
  ChainCheck check(const ReportHeader& h, const crypto::Digest& digest);

  bool known() const { return known_; }
  std::uint64_t last_seq() const { return seq_; }
  const crypto::Digest& last_digest() const { return digest_; }

 private:
  bool known_ = false;
  std::uint64_t seq_ = 0;
  crypto::Digest digest_{};
};

}  // namespace gridnode::protocol
