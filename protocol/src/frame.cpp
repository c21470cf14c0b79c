#include "gridnode/protocol/frame.hpp"

#include <algorithm>

namespace gridnode::protocol {

void append_frame(Bytes& out, FrameKind kind, std::span<const std::uint8_t> payload) {
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(kind));
  w.uvarint(payload.size());
  w.fixed(payload);
}

platform::Result<std::optional<Frame>> FrameReader::next() {
  if (reader_.at_end()) {
    return std::optional<Frame>{};
  }
  Frame f;
  f.offset = reader_.offset();
  auto kind = reader_.u8();
  if (!kind) {
    return tl::unexpected(kind.error());
  }
  std::size_t limit = 0;
  switch (static_cast<FrameKind>(*kind)) {
    case FrameKind::catalog: limit = kMaxCatalogFrame; break;
    case FrameKind::report:
    case FrameKind::gap: limit = kMaxReportFrame; break;
    case FrameKind::hello:
    case FrameKind::welcome:
    case FrameKind::ack:
    case FrameKind::reject:
    case FrameKind::policy_status: limit = kMaxSessionFrame; break;
    case FrameKind::policy_bundle: limit = kMaxPolicyBundleFrame; break;
    default: return reader_.error("unknown frame kind " + std::to_string(*kind));
  }
  f.kind = static_cast<FrameKind>(*kind);
  auto length = reader_.uvarint();
  if (!length) {
    return tl::unexpected(length.error());
  }
  if (*length > limit) {
    return reader_.error("frame of " + std::to_string(*length) + " bytes exceeds the limit of " +
                         std::to_string(limit));
  }
  auto payload = reader_.fixed(static_cast<std::size_t>(*length));
  if (!payload) {
    return tl::unexpected(payload.error());
  }
  f.payload = *payload;
  return std::optional<Frame>(f);
}

std::span<std::uint8_t> FrameAssembler::space() {
  constexpr std::size_t kMax = kMaxCatalogFrame + 16;  // the largest frame and its header
  if (used_ == buf_.size() && buf_.size() < kMax) {
    buf_.resize(std::min(buf_.size() * 2, kMax));
  }
  return std::span<std::uint8_t>(buf_).subspan(used_);
}

platform::Result<void> FrameAssembler::frames(std::vector<Frame>& out) {
  FrameReader reader(std::span<const std::uint8_t>(buf_.data() + done_, used_ - done_));
  for (;;) {
    auto f = reader.next();
    if (!f) {
      // A frame cut short is only not complete yet; anything else is the peer's error.
      if (f.error().context.starts_with("truncated")) {
        return {};
      }
      return tl::unexpected(f.error());
    }
    if (!*f) {
      return {};
    }
    Frame frame = **f;
    const std::size_t end =
        static_cast<std::size_t>(frame.payload.data() + frame.payload.size() - buf_.data());
    frame.offset += done_;
    out.push_back(frame);
    done_ = end;
  }
}

void FrameAssembler::consume() {
  std::copy(buf_.begin() + static_cast<std::ptrdiff_t>(done_),
            buf_.begin() + static_cast<std::ptrdiff_t>(used_), buf_.begin());
  used_ -= done_;
  done_ = 0;
}

platform::Result<std::span<const std::uint8_t>> report_file_body(
    std::span<const std::uint8_t> file) {
  if (file.size() < kReportFileMagic.size() ||
      !std::equal(kReportFileMagic.begin(), kReportFileMagic.end(), file.begin())) {
    return platform::fail(std::errc::bad_message, "not a gridnode report file (no GNRPT01 magic)");
  }
  return file.subspan(kReportFileMagic.size());
}

}  // namespace gridnode::protocol
