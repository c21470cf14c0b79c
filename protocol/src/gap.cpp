#include "gridnode/protocol/gap.hpp"

#include "archive.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::protocol {

void encode_gap(const GapRecord& gap, Bytes& out) {
  out.clear();
  Writer w(out);
  w.u8(kGapVersion);
  WireOutputArchive ar(w);
  ar(gap.node_id, gap.from_seq, gap.to_seq, gap.time_ns, gap.reason);
}

platform::Result<GapRecord> decode_gap(std::span<const std::uint8_t> message) {
  Reader r(message);
  if (auto v = expect_version(r, kGapVersion, "gap record"); !v) {
    return tl::unexpected(v.error());
  }
  GapRecord g;
  try {
    WireInputArchive ar(r);
    ar(g.node_id, g.from_seq, g.to_seq, g.time_ns, g.reason);
  } catch (const DecodeError& e) {
    return tl::unexpected(platform::Error{e.error.code, "gap record: " + e.error.context});
  }
  if (!r.at_end()) {
    return r.error("gap record: trailing bytes");
  }
  if (!valid_node_id(g.node_id) || g.from_seq == 0 || g.to_seq < g.from_seq) {
    return platform::fail(std::errc::bad_message, "gap record: invalid node id or range");
  }
  return g;
}

}  // namespace gridnode::protocol
