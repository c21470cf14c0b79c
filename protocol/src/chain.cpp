#include "gridnode/protocol/chain.hpp"

namespace gridnode::protocol {

std::string_view to_string(Link link) {
  switch (link) {
    case Link::first: return "first";
    case Link::next: return "next";
    case Link::gap: return "gap";
    case Link::duplicate: return "duplicate";
    case Link::replay: return "replay";
    case Link::fork: return "fork";
  }
  return "unknown";
}

std::string ChainCheck::describe() const {
  switch (link) {
    case Link::gap:
      return missing_from == missing_to
                 ? "report " + std::to_string(missing_from) + " is missing"
                 : "reports " + std::to_string(missing_from) + "-" + std::to_string(missing_to) +
                       " are missing";
    case Link::duplicate: return "duplicate of the last report";
    case Link::replay: return "replayed or out-of-order report";
    case Link::fork: return "previous-report digest does not match: altered or forked chain";
    default: return std::string(to_string(link));
  }
}

ChainCheck ChainVerifier::check(const ReportHeader& h, const crypto::Digest& digest) {
  ChainCheck c;
  if (!known_) {
    c.link = Link::first;
  } else if (h.seq == seq_ && digest == digest_) {
    c.link = Link::duplicate;
  } else if (h.seq <= seq_) {
    c.link = Link::replay;
  } else if (h.seq == seq_ + 1) {
    c.link = h.prev == digest_ ? Link::next : Link::fork;
  } else {
    c.link = Link::gap;
    c.missing_from = seq_ + 1;
    c.missing_to = h.seq - 1;
  }
  if (c.accepted()) {
    known_ = true;
    seq_ = h.seq;
    digest_ = digest;
  }
  return c;
}

}  // namespace gridnode::protocol
