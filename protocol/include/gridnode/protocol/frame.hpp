#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/wire.hpp"

// Framing (docs/protocol.md, "Frames and report files"): a kind byte, a varint length, the
// payload. The same frames go into report files and, later, onto the uplink.
namespace gridnode::protocol {

enum class FrameKind : std::uint8_t {
  catalog = 1,  // payload: an encoded catalog
  report = 2,   // payload: a signed report (message || signature)
  gap = 3,      // payload: a signed gap record (message || signature)
  // The uplink session (docs/protocol.md §6a, protocol/session.hpp).
  hello = 16,    // agent → collector
  welcome = 17,  // collector → agent
  ack = 18,      // collector → agent
  reject = 19,   // collector → agent
  // Only on a session that negotiated ALPN kSessionAlpnPolicy (session.hpp, §6b).
  policy_bundle = 20,  // collector → agent
  policy_status = 21,  // agent → collector
};

inline constexpr std::size_t kMaxSessionFrame = 64 * 1024;
// A policy bundle (at most 1 MiB, policy_bundle.hpp) with its message's version and length.
inline constexpr std::size_t kMaxPolicyBundleFrame = (std::size_t{1} << 20) + 16;

inline constexpr std::size_t kMaxCatalogFrame = std::size_t{16} << 20;
inline constexpr std::size_t kMaxReportFrame = std::size_t{4} << 20;

// "GNRPT01\n": the first 8 bytes of a report file.
inline constexpr std::array<std::uint8_t, 8> kReportFileMagic = {'G', 'N', 'R', 'P',
                                                                   'T', '0', '1', '\n'};

void append_frame(Bytes& out, FrameKind kind, std::span<const std::uint8_t> payload);

struct Frame {
  FrameKind kind = FrameKind::report;
  std::span<const std::uint8_t> payload;
  std::size_t offset = 0;  // where the frame starts in the input, for messages
};

// Walks the frames of a buffer. An unknown kind, a length over its kind's limit or a frame cut
// short is an error naming the byte offset.
class FrameReader {
 public:
  explicit FrameReader(std::span<const std::uint8_t> bytes) : reader_(bytes) {}
  // Starts at byte `start` (at most bytes.size()), so that offsets in frames and errors count
  // from the start of `bytes`: a report file's reader starts after the magic.
  FrameReader(std::span<const std::uint8_t> bytes, std::size_t start) : reader_(bytes) {
    (void)reader_.fixed(start);
  }
  // The next frame, or nullopt at a clean end.
  [[nodiscard]] platform::Result<std::optional<Frame>> next();

 private:
  Reader reader_;
};

// Turns a byte stream (a TLS session) into whole frames: the uplink's and the collector's reads
// go into space(), and frames() hands out every complete frame buffered so far. The buffer grows
// only as far as the largest frame allowed.
class FrameAssembler {
 public:
  // Where the next read may write (never empty unless a frame is too large, which frames()
  // reports first).
  std::span<std::uint8_t> space();
  void commit(std::size_t n) { used_ += n; }
  // Appends to `out` every complete frame not handed out yet; their payloads stay valid until
  // consume(). A malformed frame (unknown kind, over its limit) is an error.
  [[nodiscard]] platform::Result<void> frames(std::vector<Frame>& out);
  // Drops the frames handed out, keeping a partial one.
  void consume();

 private:
  std::vector<std::uint8_t> buf_ = std::vector<std::uint8_t>(64 * 1024);
  std::size_t used_ = 0;
  std::size_t done_ = 0;  // bytes of the frames handed out
};

// A report file: the magic, then frames. Returns the frames' part of `file`.
[[nodiscard]] platform::Result<std::span<const std::uint8_t>> report_file_body(
    std::span<const std::uint8_t> file);

}  // namespace gridnode::protocol
