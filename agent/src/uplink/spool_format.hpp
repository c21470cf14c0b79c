#pragma once

// The spool's record format and its reader (docs/spool.md has it byte for byte): the pieces
// that recovery, appending and reading share. Private to agent/src/uplink/.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gridnode/agent/spool.hpp"
#include "gridnode/platform/fd.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::agent {
namespace fmt = spool_format;
using protocol::FrameKind;
}  // namespace gridnode::agent

namespace gridnode::agent::spool_internal {

constexpr std::string_view kComponent = "spool";
constexpr std::string_view kAckedName = "acked";
constexpr std::size_t kWindowBytes = std::size_t{64} << 10;
// One index mark per this many bytes of a segment: bounds the scan that finds a seq, and keeps
// the index at a few bytes per 32 KiB of spool.
constexpr std::uint64_t kMarkSpacing = std::uint64_t{32} << 10;
constexpr std::uint64_t kMinMaxBytes = std::uint64_t{16} << 10;
// More fds than this waiting for flush() means nobody flushes: close the oldest unsynced (its
// bytes are in the page cache; only a power cut could take them) rather than run out of fds.
constexpr std::size_t kMaxPendingSync = 8;

inline void put_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    p[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

inline void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

inline std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

inline std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

inline std::uint64_t record_size(std::size_t payload) { return fmt::kRecordOverhead + payload; }

// Appends one record to `out`; in steady state `out` has the capacity already.
void put_record(protocol::Bytes& out, FrameKind kind, std::uint8_t flags, std::uint64_t seq,
                std::span<const std::uint8_t> payload);

// "<20 digits>.seg" → the number.
std::optional<std::uint64_t> parse_segment_name(const std::string& name);


}  // namespace gridnode::agent::spool_internal

namespace gridnode::agent {

using namespace spool_internal;  // NOLINT: the spool's own files only

// A segment's descriptor for reading: the one appends go to, or one opened for the read (owned,
// closed with it).
struct Spool::ReadFd {
  int fd = -1;
  platform::UniqueFd owned;
};

// A record as found in a file; `payload` points into the Window's buffer.
struct Spool::RecordView {
  FrameKind kind = FrameKind::report;
  std::uint8_t flags = 0;
  std::uint64_t seq = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;  // whole record
  std::span<const std::uint8_t> payload;
};

// Reads a segment through a buffer of kWindowBytes (more for a larger record), so a scan costs
// one pread per 64 KiB rather than two per record.
class Spool::Window {
 public:
  enum class Parse { ok, bad, io_error };

  Window(int fd, std::uint64_t size, protocol::Bytes& buf) : fd_(fd), size_(size), buf_(buf) {}

  std::uint64_t size() const { return size_; }
  int error() const { return err_; }

  // The bytes [off, off + n), or an empty span when they pass the end of the file or a read
  // failed (error() then says why).
  std::span<const std::uint8_t> get(std::uint64_t off, std::size_t n) {
    if (n == 0 || off > size_ || n > size_ - off) {
      return {};
    }
    if (off >= start_ && off + n <= start_ + len_) {
      return {buf_.data() + (off - start_), n};
    }
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(std::max(n, kWindowBytes), size_ - off));
    if (buf_.size() < want) {
      buf_.resize(want);
    }
    std::size_t got = 0;
    while (got < want) {
      ssize_t r = ::pread(fd_, buf_.data() + got, want - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r < 0) {
        err_ = errno;
        len_ = 0;
        return {};
      }
      if (r == 0) {
        break;  // the file is shorter than we were told: treat the rest as absent
      }
      got += static_cast<std::size_t>(r);
    }
    start_ = off;
    len_ = got;
    if (got < n) {
      return {};
    }
    return {buf_.data(), n};
  }

  // Checks the record at `off`: magic, length, checksum, kind and flags.
  Parse parse(std::uint64_t off, RecordView& r) {
    auto h = get(off, fmt::kRecordOverhead);
    if (h.empty()) {
      return err_ != 0 ? Parse::io_error : Parse::bad;
    }
    if (std::memcmp(h.data(), fmt::kRecordMagic.data(), fmt::kRecordMagic.size()) != 0) {
      return Parse::bad;
    }
    const std::uint32_t length = get_u32(h.data() + 4);
    const std::uint32_t crc = get_u32(h.data() + 8);
    if (length < fmt::kBodyFixedSize || length > fmt::kBodyFixedSize + protocol::kMaxCatalogFrame) {
      return Parse::bad;
    }
    auto all = get(off, fmt::kHeaderSize + length);
    if (all.empty()) {
      return err_ != 0 ? Parse::io_error : Parse::bad;
    }
    std::uint32_t c = crc32c(all.subspan(4, 4));
    c = crc32c(all.subspan(fmt::kHeaderSize), c);
    if (c != crc) {
      return Parse::bad;
    }
    const std::uint8_t kind = all[12];
    const std::uint8_t flags = all[13];
    const std::size_t payload = length - fmt::kBodyFixedSize;
    if (kind < 1 || kind > 3 || (flags & ~fmt::kFlagCatalogCopy) != 0 ||
        (flags != 0 && kind != static_cast<std::uint8_t>(FrameKind::catalog)) ||
        (kind != static_cast<std::uint8_t>(FrameKind::catalog) &&
         payload > protocol::kMaxReportFrame)) {
      return Parse::bad;
    }
    r.kind = static_cast<FrameKind>(kind);
    r.flags = flags;
    r.seq = get_u64(all.data() + 14);
    r.offset = off;
    r.size = fmt::kHeaderSize + length;
    r.payload = all.subspan(fmt::kRecordOverhead);
    return Parse::ok;
  }

  // The offset of the next record after `from` that parses and that `accept` takes, found by
  // its magic; nullopt when there is none up to the end.
  template <class Accept>
  Parse resync(std::uint64_t from, Accept accept, std::uint64_t& found) {
    std::uint64_t off = from;
    while (off < size_ && size_ - off >= fmt::kRecordOverhead) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kWindowBytes, size_ - off));
      auto s = get(off, n);
      if (s.empty()) {
        return err_ != 0 ? Parse::io_error : Parse::bad;
      }
      const void* hit =
          ::memmem(s.data(), s.size(), fmt::kRecordMagic.data(), fmt::kRecordMagic.size());
      if (hit == nullptr) {
        off += n - (fmt::kRecordMagic.size() - 1);  // n >= 22: always moves on
        continue;
      }
      const std::uint64_t at =
          off + static_cast<std::uint64_t>(static_cast<const std::uint8_t*>(hit) - s.data());
      RecordView r;
      Parse p = parse(at, r);
      if (p == Parse::io_error) {
        return p;
      }
      if (p == Parse::ok && accept(r)) {
        found = at;
        return Parse::ok;
      }
      off = at + 1;
    }
    return Parse::bad;
  }

 private:
  int fd_;
  std::uint64_t size_;
  protocol::Bytes& buf_;
  std::uint64_t start_ = 0;
  std::size_t len_ = 0;
  int err_ = 0;
};

}  // namespace gridnode::agent
