#include "gridnode/agent/spool.hpp"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "gridnode/crypto/sha256.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::agent {

using platform::fail;
using platform::fail_errno;
using platform::Level;
using platform::LogLine;
using platform::Result;
using protocol::FrameKind;
namespace fmt = spool_format;

std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (std::uint64_t{1} << 20)) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  if (bytes >= (std::uint64_t{1} << 10)) {
    return std::to_string(bytes >> 10) + " KiB";
  }
  return std::to_string(bytes) + " B";
}

namespace {

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

// CRC-32C, slice-by-8: t[0] is the byte-wise table, t[k][i] the CRC of byte i followed by k
// zero bytes, so eight bytes fold in with eight lookups.
struct CrcTables {
  std::uint32_t t[8][256];
};

constexpr CrcTables make_crc_tables() {
  CrcTables c{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t v = i;
    for (int k = 0; k < 8; ++k) {
      v = (v >> 1) ^ ((v & 1u) != 0 ? 0x82F63B78u : 0u);
    }
    c.t[0][i] = v;
  }
  for (int k = 1; k < 8; ++k) {
    for (std::uint32_t i = 0; i < 256; ++i) {
      c.t[k][i] = (c.t[k - 1][i] >> 8) ^ c.t[0][c.t[k - 1][i] & 0xffu];
    }
  }
  return c;
}

constexpr CrcTables kCrc = make_crc_tables();

void put_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    p[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

std::uint64_t record_size(std::size_t payload) { return fmt::kRecordOverhead + payload; }

// Appends one record to `out`; in steady state `out` has the capacity already.
void put_record(protocol::Bytes& out, FrameKind kind, std::uint8_t flags, std::uint64_t seq,
                std::span<const std::uint8_t> payload) {
  const std::size_t at = out.size();
  const auto length = static_cast<std::uint32_t>(fmt::kBodyFixedSize + payload.size());
  out.resize(at + fmt::kRecordOverhead);
  std::uint8_t* h = out.data() + at;
  std::memcpy(h, fmt::kRecordMagic.data(), fmt::kRecordMagic.size());
  put_u32(h + 4, length);
  h[12] = static_cast<std::uint8_t>(kind);
  h[13] = flags;
  put_u64(h + 14, seq);
  out.insert(out.end(), payload.begin(), payload.end());
  h = out.data() + at;
  std::uint32_t crc = crc32c({h + 4, 4});
  crc = crc32c({h + fmt::kHeaderSize, length}, crc);
  put_u32(h + 8, crc);
}

Result<void> pwrite_all(int fd, std::span<const std::uint8_t> data, std::uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return fail_errno(errno, "pwrite");
    }
    if (n == 0) {
      return fail(std::errc::io_error, "pwrite wrote nothing");
    }
    data = data.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

// "<20 digits>.seg" → the number.
std::optional<std::uint64_t> parse_segment_name(const std::string& name) {
  if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') {
      return std::nullopt;
    }
  }
  auto v = platform::parse_uint64(std::string_view(name).substr(0, 20));
  if (!v) {
    return std::nullopt;
  }
  return *v;
}

std::uint64_t now_unix_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

struct Fd {
  int fd = -1;
  bool owned = false;
  ~Fd() {
    if (owned && fd >= 0) {
      ::close(fd);
    }
  }
};

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc) {
  crc = ~crc;
  const std::uint8_t* p = data.data();
  std::size_t n = data.size();
  if constexpr (std::endian::native == std::endian::little) {
    while (n >= 8) {
      std::uint64_t v;
      std::memcpy(&v, p, 8);
      v ^= crc;
      crc = kCrc.t[7][v & 0xff] ^ kCrc.t[6][(v >> 8) & 0xff] ^ kCrc.t[5][(v >> 16) & 0xff] ^
            kCrc.t[4][(v >> 24) & 0xff] ^ kCrc.t[3][(v >> 32) & 0xff] ^
            kCrc.t[2][(v >> 40) & 0xff] ^ kCrc.t[1][(v >> 48) & 0xff] ^ kCrc.t[0][v >> 56];
      p += 8;
      n -= 8;
    }
  }
  while (n-- > 0) {
    crc = kCrc.t[0][(crc ^ *p++) & 0xffu] ^ (crc >> 8);
  }
  return ~crc;
}

std::string spool_dir(const std::string& state_dir) { return state_dir + "/spool"; }

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

Spool::Spool(const std::string& state_dir, SpoolOptions options)
    : dir_(spool_dir(state_dir)), options_(std::move(options)) {
  const std::uint64_t max = options_.max_bytes;
  segment_bytes_ = std::min(options_.segment_bytes, max / 4);
  segment_bytes_ = std::max(segment_bytes_, max / 1024);
  gap_reason_ = "spool full (" + human_bytes(max) + ")";
  // A gap message: version, node id (length varint up to 3 bytes), three varints of at most 10
  // bytes, the reason; then the 64-byte signature and the record's own overhead.
  gap_reserve_ = fmt::kRecordOverhead + 1 + 3 + options_.node_id.size() + 30 + 3 +
                 gap_reason_.size() + protocol::kSignatureSize;
}

Spool::~Spool() {
  if (open_) {
    if (auto r = close(); !r) {
      platform::log(Level::err, kComponent,
                    LogLine("not closed cleanly").kv("err", r.error().message()));
    }
    return;
  }
  // open() failed half-way: release what recover() had opened.
  for (auto& [name, fd] : pending_sync_) {
    ::close(fd);
  }
  if (active_fd_ >= 0) {
    ::close(active_fd_);
  }
  if (dir_fd_ >= 0) {
    ::close(dir_fd_);
  }
}

Result<std::unique_ptr<Spool>> Spool::open(const std::string& state_dir, SpoolOptions options) {
  if (options.max_bytes < kMinMaxBytes) {
    return fail(std::errc::invalid_argument, "spool: max_bytes " +
                                                 std::to_string(options.max_bytes) + " is below " +
                                                 std::to_string(kMinMaxBytes));
  }
  if (options.segment_bytes == 0) {
    return fail(std::errc::invalid_argument, "spool: segment_bytes is 0");
  }
  if (options.sign_gap && !protocol::valid_node_id(options.node_id)) {
    return fail(std::errc::invalid_argument,
                "spool: gap records need a valid node id, not \"" + options.node_id + "\"");
  }
  std::unique_ptr<Spool> spool(new Spool(state_dir, std::move(options)));
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail_errno(errno, "spool: cannot create " + state_dir);
  }
  if (auto r = spool->recover(); !r) {
    return tl::unexpected(r.error());
  }
  return spool;
}

std::string Spool::segment_path(std::uint64_t name) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/%020llu.seg", static_cast<unsigned long long>(name));
  return dir_ + buf;
}

Spool::Segment Spool::make_segment(std::uint64_t name) const {
  Segment s;
  s.name = name;
  s.path = segment_path(name);
  s.first_record = fmt::kSegmentMagic.size();
  // Capacity for every mark a full segment gets, so append() does not allocate for them.
  s.marks.reserve(static_cast<std::size_t>(segment_bytes_ / kMarkSpacing + 2));
  return s;
}

Spool::Segment* Spool::find_segment(std::uint64_t name) {
  for (auto& s : segments_) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

void Spool::index_record(Segment& s, FrameKind kind, std::uint8_t flags, std::uint64_t seq,
                         std::uint64_t offset) {
  ++s.records;
  switch (kind) {
    case FrameKind::catalog: {
      const bool copy = (flags & fmt::kFlagCatalogCopy) != 0;
      s.catalogs.push_back({seq, offset, copy});
      if (!copy) {
        s.max_seq = std::max(s.max_seq, seq);
      }
      break;
    }
    case FrameKind::report:
      ++s.reports;
      if (s.first_report == 0) {
        s.first_report = seq;
      }
      s.last_report = seq;
      s.max_seq = std::max(s.max_seq, seq);
      if (!s.runs.empty() && s.runs.back().last + 1 == seq) {
        s.runs.back().last = seq;
      } else {
        s.runs.push_back({seq, seq});
      }
      if (s.marks.empty() || offset >= s.next_mark) {
        s.marks.push_back({seq, offset});
        s.next_mark = offset + kMarkSpacing;
      }
      break;
    case FrameKind::gap:
      s.max_seq = std::max(s.max_seq, seq);
      break;
    default:  // the uplink's own frame kinds never reach the spool (parse() refuses them)
      break;
  }
}

void Spool::add_gap(const GapPos& gap) {
  auto it = std::upper_bound(gaps_.begin(), gaps_.end(), gap.seq,
                             [](std::uint64_t seq, const GapPos& g) { return seq < g.seq; });
  gaps_.insert(it, gap);
}

// --- recovery ------------------------------------------------------------------------------

Result<void> Spool::recover() {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail_errno(errno, "spool: cannot create " + dir_);
  }
  dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) {
    return fail_errno(errno, "spool: cannot open " + dir_);
  }
  auto names = platform::list_dir(dir_);
  if (!names) {
    return tl::unexpected(names.error());
  }
  std::vector<std::uint64_t> segment_names;
  const std::string stale_prefix = "." + std::string(kAckedName) + ".tmp-";
  for (const auto& name : *names) {
    if (name.compare(0, stale_prefix.size(), stale_prefix) == 0) {
      // write_file_atomic's temporary, left by a crash before its rename: never the real file.
      ::unlink((dir_ + "/" + name).c_str());
    } else if (auto n = parse_segment_name(name)) {
      segment_names.push_back(*n);
    }
  }
  std::sort(segment_names.begin(), segment_names.end());

  const std::string acked_path = dir_ + "/" + std::string(kAckedName);
  char acked_buf[64];
  if (auto text = platform::read_small_file(acked_path, acked_buf)) {
    if (auto v = platform::parse_uint64(*text)) {
      acked_ = acked_persisted_ = *v;
    } else {
      // Resending everything is safe; skipping something on a guess is not.
      platform::log(Level::warning, kComponent,
                    LogLine("ack watermark unreadable, starting from 0")
                        .kv("path", acked_path)
                        .kv("err", v.error().message()));
    }
  } else if (text.error().code != std::errc::no_such_file_or_directory) {
    platform::log(Level::warning, kComponent,
                  LogLine("ack watermark unreadable, starting from 0")
                      .kv("path", acked_path)
                      .kv("err", text.error().message()));
  }

  protocol::Bytes scan_buf;
  for (std::size_t i = 0; i < segment_names.size(); ++i) {
    if (auto r = scan_segment(segment_names[i], i + 1 == segment_names.size(), scan_buf); !r) {
      return r;
    }
  }

  if (acked_ > newest_seq_) {
    // Only a spool emptied by hand gets here. Keeping the watermark would make the reports
    // appended next count as acknowledged and never be sent: a silent loss. Without it they are
    // sent, and a receiver that has those seqs already says so.
    platform::log(Level::warning, kComponent,
                  LogLine("ack watermark beyond the newest report, lowered")
                      .kv("acked", static_cast<std::int64_t>(acked_))
                      .kv("newest", static_cast<std::int64_t>(newest_seq_)));
    acked_ = newest_seq_;
  }
  if (!segments_.empty() && segments_.back().size < segment_bytes_) {
    active_fd_ = ::open(segments_.back().path.c_str(), O_RDWR | O_CLOEXEC);
    if (active_fd_ < 0) {
      return fail_errno(errno, "spool: cannot open " + segments_.back().path);
    }
  }
  open_ = true;
  if (auto r = delete_acked(); !r) {
    return r;
  }
  resolve_unacked();
  last_flush_ = last_ack_write_ = std::chrono::steady_clock::now();
  synced_seq_ = newest_seq_;
  SpoolStats st = stats();
  platform::log(Level::notice, kComponent,
                LogLine("opened")
                    .kv("dir", dir_)
                    .kv("segments", static_cast<std::int64_t>(st.segments))
                    .kv("bytes", static_cast<std::int64_t>(st.bytes))
                    .kv("oldest", static_cast<std::int64_t>(st.oldest_seq))
                    .kv("newest", static_cast<std::int64_t>(st.newest_seq))
                    .kv("acked", static_cast<std::int64_t>(st.acked_seq)));
  return {};
}

Result<void> Spool::scan_segment(std::uint64_t name, bool last, protocol::Bytes& buf) {
  Segment s = make_segment(name);
  int fd = ::open(s.path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return fail_errno(errno, "spool: cannot open " + s.path);
  }
  Fd closer{fd, true};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail_errno(errno, "spool: fstat " + s.path);
  }
  Window w(fd, static_cast<std::uint64_t>(st.st_size), buf);
  auto io_error = [&] { return fail_errno(w.error(), "spool: cannot read " + s.path); };

  // Records are accepted in order only: a report after every report before it, a catalog with
  // the seq of a report still to come. A stale record that happens to parse is not taken.
  auto in_order = [&](const RecordView& r) {
    switch (r.kind) {
      case FrameKind::report:
      case FrameKind::catalog:
        return r.seq > newest_seq_;
      case FrameKind::gap:
        return r.seq > 0;
      default:
        return false;
    }
  };

  std::uint64_t pos = fmt::kSegmentMagic.size();
  bool need_resync = true;
  if (auto h = w.get(0, fmt::kSegmentMagic.size());
      !h.empty() && std::equal(h.begin(), h.end(), fmt::kSegmentMagic.begin())) {
    need_resync = false;
  } else if (w.error() != 0) {
    return io_error();
  } else {
    pos = 0;
  }
  bool first = true;
  for (;;) {
    RecordView r;
    Window::Parse p = Window::Parse::bad;
    if (!need_resync) {
      if (pos == w.size()) {
        break;
      }
      p = w.parse(pos, r);
      if (p == Window::Parse::io_error) {
        return io_error();
      }
      if (p == Window::Parse::ok && !in_order(r)) {
        p = Window::Parse::bad;
      }
    }
    if (p != Window::Parse::ok) {
      std::uint64_t found = 0;
      // A bad header at offset 0 is corruption too: look for records from offset 1 on.
      Window::Parse q = w.resync(need_resync && pos == 0 ? 0 : pos + 1, in_order, found);
      if (q == Window::Parse::io_error) {
        return io_error();
      }
      need_resync = false;
      if (q == Window::Parse::ok) {
        bytes_skipped_ += found - pos;
        platform::log(Level::warning, kComponent,
                      LogLine("corrupt bytes skipped")
                          .kv("segment", s.path)
                          .kv("offset", static_cast<std::int64_t>(pos))
                          .kv("bytes", static_cast<std::int64_t>(found - pos)));
        pos = found;
        continue;
      }
      // Nothing valid up to the end: a torn tail (the write that a crash interrupted), or
      // garbage. Cut it, so that appends go on after the last good record.
      const std::uint64_t cut = w.size() - pos;
      if (cut > 0) {
        if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) {
          return fail_errno(errno, "spool: cannot truncate " + s.path);
        }
        bytes_cut_ += cut;
        platform::log(last ? Level::notice : Level::warning, kComponent,
                      LogLine(last ? "torn tail cut" : "corrupt tail of an older segment cut")
                          .kv("segment", s.path)
                          .kv("offset", static_cast<std::int64_t>(pos))
                          .kv("bytes", static_cast<std::int64_t>(cut)));
      }
      break;
    }
    if (first) {
      s.first_record = pos;
      first = false;
    }
    index_record(s, r.kind, r.flags, r.seq, pos);
    switch (r.kind) {
      case FrameKind::catalog:
        catalog_.assign(r.payload.begin(), r.payload.end());
        break;
      case FrameKind::report:
        newest_seq_ = r.seq;
        newest_segment_ = s.name;
        newest_offset_ = pos;
        break;
      case FrameKind::gap: {
        GapPos g{r.seq, r.seq, r.seq, s.name, pos};
        if (auto env = protocol::split_envelope(r.payload)) {
          if (auto rec = protocol::decode_gap(env->message); rec && rec->to_seq == r.seq) {
            g.from = rec->from_seq;
          }
        }
        add_gap(g);
        break;
      }
      default:
        break;
    }
    pos += r.size;
  }
  s.size = pos;
  if (s.records == 0) {
    // A segment created by a crash before its first write finished, or one rotten through.
    if (::unlink(s.path.c_str()) != 0) {
      return fail_errno(errno, "spool: cannot remove " + s.path);
    }
    platform::log(last ? Level::notice : Level::warning, kComponent,
                  LogLine("segment without a valid record removed").kv("segment", s.path));
    return {};
  }
  disk_bytes_ += s.size;
  segments_.push_back(std::move(s));
  return {};
}

// --- appending -----------------------------------------------------------------------------

void Spool::retire_active() {
  if (active_fd_ < 0) {
    return;
  }
  if (pending_sync_.size() >= kMaxPendingSync) {
    ::close(pending_sync_.front().second);
    pending_sync_.erase(pending_sync_.begin());
  }
  pending_sync_.emplace_back(segments_.back().name, active_fd_);
  active_fd_ = -1;
}

// Removes segments_.front() from the index (its file is gone already).
void Spool::forget_front() {
  const Segment& s = segments_.front();
  for (auto it = pending_sync_.begin(); it != pending_sync_.end(); ++it) {
    if (it->first == s.name) {
      ::close(it->second);  // nothing left to make durable
      pending_sync_.erase(it);
      break;
    }
  }
  if (segments_.size() == 1 && active_fd_ >= 0) {
    ::close(active_fd_);
    active_fd_ = -1;
  }
  std::erase_if(gaps_, [&](const GapPos& g) { return g.segment == s.name; });
  disk_bytes_ -= s.size;
  segments_.pop_front();
  dir_dirty_ = true;
}

// What dropping `s` loses: its reports not acknowledged yet, and the ranges of the gap records
// it holds that were not acknowledged either (the new gap record must cover those too).
void Spool::unacked_range(const Segment& s, std::uint64_t& from, std::uint64_t& to,
                          std::uint64_t& lost) const {
  for (const Run& run : s.runs) {
    if (run.last > acked_) {
      const std::uint64_t first = std::max(run.first, acked_ + 1);
      from = std::min(from, first);
      to = std::max(to, run.last);
      lost += run.last - first + 1;
    }
  }
  for (const GapPos& g : gaps_) {
    if (g.segment == s.name && g.seq > acked_) {
      from = std::min(from, std::max(g.from, acked_ + 1));
      to = std::max(to, g.to);
    }
  }
}

Result<void> Spool::append(std::span<const std::uint8_t> catalog,
                           std::span<const std::uint8_t> envelope, std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  if (!open_) {
    return fail(std::errc::bad_file_descriptor, "spool: closed");
  }
  if (seq <= newest_seq_) {
    return fail(std::errc::invalid_argument, "spool: report " + std::to_string(seq) +
                                                 " is not after " + std::to_string(newest_seq_));
  }
  if (envelope.size() <= protocol::kSignatureSize || envelope.size() > protocol::kMaxReportFrame) {
    return fail(std::errc::invalid_argument,
                "spool: report of " + std::to_string(envelope.size()) + " bytes");
  }
  if (catalog.size() > protocol::kMaxCatalogFrame) {
    return fail(std::errc::invalid_argument,
                "spool: catalog of " + std::to_string(catalog.size()) + " bytes");
  }
  const bool catalog_change = !catalog.empty() && !std::equal(catalog.begin(), catalog.end(),
                                                              catalog_.begin(), catalog_.end());
  bool roll = active_fd_ < 0 || active_broken_ || segments_.back().size >= segment_bytes_;

  // Plan the drops: the oldest segments whose bytes make room. Nothing is removed before this
  // report and its gap record are written, so a failed write or a kill -9 in between loses
  // nothing; the bound holds again when append() returns.
  std::size_t drops = 0;
  std::uint64_t drop_bytes = 0;
  std::uint64_t from = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t to = 0;
  std::uint64_t lost = 0;
  if (pending_gap_) {
    from = pending_gap_->first;
    to = pending_gap_->second;
  }
  auto need = [&] {
    std::uint64_t n = record_size(envelope.size());
    if (catalog_change) {
      n += record_size(catalog.size());
    }
    if (roll) {
      n += fmt::kSegmentMagic.size();
      if (!catalog_change && !catalog_.empty()) {
        n += record_size(catalog_.size());
      }
    }
    if (to > 0 && options_.sign_gap) {
      n += gap_reserve_;
    }
    return n;
  };
  while (disk_bytes_ - drop_bytes + need() > options_.max_bytes) {
    const std::size_t droppable = roll ? segments_.size() : segments_.size() - 1;
    if (drops < droppable) {
      unacked_range(segments_[drops], from, to, lost);
      drop_bytes += segments_[drops].size;
      ++drops;
      continue;
    }
    if (!roll) {
      // Only the segment appended to is left: start a new one so that it can go.
      roll = true;
      continue;
    }
    return fail(std::errc::no_buffer_space, "spool: a report needing " + std::to_string(need()) +
                                                " bytes does not fit in max_bytes " +
                                                std::to_string(options_.max_bytes));
  }

  protocol::Bytes gap_envelope;
  protocol::GapRecord gap;
  if (to > 0 && options_.sign_gap) {
    gap = {options_.node_id, from, to, now_unix_ns(), gap_reason_};
    auto signed_gap = options_.sign_gap(gap);
    if (!signed_gap) {
      if (!signer_failing_) {
        platform::log(Level::warning, kComponent,
                      LogLine("gap record not signed, will retry")
                          .kv("from", static_cast<std::int64_t>(from))
                          .kv("to", static_cast<std::int64_t>(to))
                          .kv("err", signed_gap.error().message()));
      }
      signer_failing_ = true;
    } else if (record_size(signed_gap->size()) > gap_reserve_ ||
               signed_gap->size() <= protocol::kSignatureSize) {
      platform::log(Level::err, kComponent,
                    LogLine("signed gap record of unexpected size, not written")
                        .kv("bytes", static_cast<std::int64_t>(signed_gap->size())));
    } else {
      signer_failing_ = false;
      gap_envelope = std::move(*signed_gap);
    }
  }

  struct Planned {
    FrameKind kind;
    std::uint8_t flags;
    std::uint64_t seq;
    std::uint64_t at;  // offset in buf_
  };
  std::array<Planned, 4> planned{};
  std::size_t count = 0;
  auto put = [&](FrameKind kind, std::uint8_t flags, std::uint64_t rec_seq,
                 std::span<const std::uint8_t> payload) {
    planned[count++] = {kind, flags, rec_seq, buf_.size()};
    put_record(buf_, kind, flags, rec_seq, payload);
  };
  buf_.clear();
  if (roll) {
    buf_.insert(buf_.end(), fmt::kSegmentMagic.begin(), fmt::kSegmentMagic.end());
    if (!catalog_change && !catalog_.empty()) {
      put(FrameKind::catalog, fmt::kFlagCatalogCopy, seq, catalog_);
    }
  }
  if (!gap_envelope.empty()) {
    put(FrameKind::gap, 0, to, gap_envelope);
  }
  if (catalog_change) {
    put(FrameKind::catalog, 0, seq, catalog);
  }
  put(FrameKind::report, 0, seq, envelope);

  int fd = active_fd_;
  std::uint64_t base = 0;
  std::string path;
  if (roll) {
    path = segment_path(seq);
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return fail_errno(errno, "spool: cannot create " + path);
    }
  } else {
    base = segments_.back().size;
  }
  if (auto w = pwrite_all(fd, buf_, base); !w) {
    if (roll) {
      ::close(fd);
      ::unlink(path.c_str());
    } else if (::ftruncate(fd, static_cast<off_t>(base)) != 0) {
      // The tail may hold part of this write: never append after it; open() cuts it.
      active_broken_ = true;
    }
    return fail(w.error().code, "spool: cannot append report " + std::to_string(seq) + " to " +
                                    (roll ? path : segments_.back().path));
  }
  if (roll) {
    retire_active();
    segments_.push_back(make_segment(seq));
    active_fd_ = fd;
    active_broken_ = false;
    dir_dirty_ = true;
  }
  Segment& s = segments_.back();
  for (std::size_t i = 0; i < count; ++i) {
    const Planned& p = planned[i];
    index_record(s, p.kind, p.flags, p.seq, base + p.at);
    if (p.kind == FrameKind::gap) {
      add_gap({p.seq, from, to, s.name, base + p.at});
    }
  }
  s.size += buf_.size();
  disk_bytes_ += buf_.size();
  if (catalog_change) {
    catalog_.assign(catalog.begin(), catalog.end());
  }
  if (!unacked_known_) {
    // Everything before was acknowledged: the first unacked record is the first one written
    // now that is not a catalog copy.
    const std::size_t first = planned[0].flags != 0 ? 1 : 0;
    unacked_known_ = true;
    unacked_segment_ = s.name;
    unacked_offset_ = base + planned[first].at;
  }
  if (appended_ == synced_) {
    last_flush_ = std::chrono::steady_clock::now();  // the interval runs from the first unsynced
  }
  appended_ += count;
  newest_seq_ = seq;
  newest_segment_ = s.name;
  newest_offset_ = base + planned[count - 1].at;
  newest_digest_.reset();

  if (drops > 0) {
    for (std::size_t i = 0; i < drops; ++i) {
      const Segment& old = segments_.front();
      if (::unlink(old.path.c_str()) != 0 && errno != ENOENT) {
        // Our own directory refuses: nothing else to do than say so; the bound is exceeded.
        platform::log(Level::err, kComponent,
                      LogLine("full, and cannot remove the oldest segment")
                          .kv("segment", old.path)
                          .kv("err", std::strerror(errno)));
        break;
      }
      platform::log(Level::warning, kComponent,
                    LogLine("full: oldest segment dropped")
                        .kv("segment", old.path)
                        .kv("max_bytes", static_cast<std::int64_t>(options_.max_bytes)));
      forget_front();
    }
    reports_dropped_ += lost;
    resolve_unacked();
  }
  if (!gap_envelope.empty()) {
    pending_gap_.reset();
    ++gaps_created_;
    platform::log(Level::warning, kComponent,
                  LogLine("gap record appended")
                      .kv("from", static_cast<std::int64_t>(from))
                      .kv("to", static_cast<std::int64_t>(to)));
  } else if (to > 0) {
    pending_gap_.emplace(from, to);  // told with a later append, once signing works
  }
  return {};
}

// --- flushing ------------------------------------------------------------------------------

bool Spool::flush_due() const {
  std::lock_guard lock(mutex_);
  if (!open_) {
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (appended_ != synced_ || dir_dirty_ || !pending_sync_.empty()) {
    if (options_.fsync_every > 0 && appended_ - synced_ >= options_.fsync_every) {
      return true;
    }
    if (now - last_flush_ >= options_.fsync_interval) {
      return true;
    }
  }
  return acked_ != acked_persisted_ && now - last_ack_write_ >= options_.ack_interval;
}

Result<void> Spool::flush(bool force_ack) {
  std::lock_guard flushing(flush_mutex_);
  int fd = -1;
  bool dir = false;
  std::optional<std::uint64_t> ack_value;
  std::uint64_t target = 0;
  std::uint64_t target_seq = 0;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (!open_) {
      return fail(std::errc::bad_file_descriptor, "spool: closed");
    }
    if (active_fd_ >= 0 && appended_ != synced_) {
      // A duplicate, so that the writer may retire or close its descriptor meanwhile.
      fd = ::dup(active_fd_);
      if (fd < 0) {
        return fail_errno(errno, "spool: dup");
      }
    }
    syncing_.swap(pending_sync_);
    dir = dir_dirty_;
    dir_dirty_ = false;
    if (acked_ != acked_persisted_ &&
        (force_ack || now - last_ack_write_ >= options_.ack_interval)) {
      ack_value = acked_;
    }
    target = appended_;
    target_seq = newest_seq_;
    last_flush_ = now;
  }
  Result<void> result;
  auto note = [&](int err, const std::string& what) {
    if (result) {
      result = fail_errno(err, "spool: " + what);
    }
  };
  if (fd >= 0) {
    if (::fdatasync(fd) != 0) {
      note(errno, "fdatasync of the current segment");
    }
    ::close(fd);
  }
  for (auto& [name, pfd] : syncing_) {
    if (::fdatasync(pfd) != 0) {
      note(errno, "fdatasync of segment " + std::to_string(name));
    }
    ::close(pfd);
  }
  syncing_.clear();
  if (dir && ::fsync(dir_fd_) != 0) {
    note(errno, "fsync of " + dir_);
  }
  const bool data_ok = result.has_value();
  bool ack_ok = false;
  if (ack_value) {
    auto w = platform::write_file_atomic(dir_ + "/" + std::string(kAckedName),
                                         std::to_string(*ack_value) + "\n", 0600);
    ack_ok = w.has_value();
    if (!w && result) {
      result = tl::unexpected(w.error());
    }
  }
  {
    std::lock_guard lock(mutex_);
    if (data_ok) {
      synced_ = std::max(synced_, target);
      synced_seq_ = std::max(synced_seq_, target_seq);
    } else {
      dir_dirty_ = dir_dirty_ || dir;
    }
    if (ack_ok) {
      acked_persisted_ = std::max(acked_persisted_, *ack_value);
      last_ack_write_ = now;
    }
  }
  return result;
}

// --- acknowledging -------------------------------------------------------------------------

Result<void> Spool::delete_acked() {
  // Oldest first; never the segment appended to, nor the one with the newest report (its
  // digest is where the chain goes on).
  while (segments_.size() > 1) {
    const Segment& s = segments_.front();
    if (s.max_seq > acked_ || s.name == newest_segment_) {
      break;
    }
    if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) {
      return fail_errno(errno, "spool: cannot remove acknowledged " + s.path);
    }
    forget_front();
  }
  return {};
}

Result<void> Spool::ack(std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  if (!open_) {
    return fail(std::errc::bad_file_descriptor, "spool: closed");
  }
  if (seq <= acked_) {
    return {};
  }
  if (seq > newest_seq_) {
    return fail(std::errc::invalid_argument, "spool: ack of " + std::to_string(seq) +
                                                 " beyond the newest report " +
                                                 std::to_string(newest_seq_));
  }
  acked_ = seq;
  auto d = delete_acked();
  resolve_unacked();
  return d;
}

// --- reading -------------------------------------------------------------------------------

Result<int> Spool::open_for_read(const Segment& s) const {
  if (active_fd_ >= 0 && &s == &segments_.back()) {
    return active_fd_;
  }
  int fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail_errno(errno, "spool: cannot open " + s.path);
  }
  return fd;
}

// The record at `off`, or, when it has gone bad since open(), the next good one (logged).
// False at the end of the segment.
Result<bool> Spool::next_record(Window& w, const Segment& s, std::uint64_t& off, RecordView& r) {
  if (off >= s.size) {
    return false;
  }
  Window::Parse p = w.parse(off, r);
  if (p == Window::Parse::ok) {
    return true;
  }
  std::uint64_t found = 0;
  if (p == Window::Parse::bad) {
    p = w.resync(
        off + 1, [](const RecordView&) { return true; }, found);
  }
  if (p == Window::Parse::io_error) {
    return fail_errno(w.error(), "spool: cannot read " + s.path);
  }
  const std::uint64_t skipped = (p == Window::Parse::ok ? found : s.size) - off;
  bytes_skipped_ += skipped;
  platform::log(Level::warning, kComponent,
                LogLine("record gone bad since open, skipped")
                    .kv("segment", s.path)
                    .kv("offset", static_cast<std::int64_t>(off))
                    .kv("bytes", static_cast<std::int64_t>(skipped)));
  if (p != Window::Parse::ok) {
    off = s.size;
    return false;
  }
  off = found;
  return w.parse(off, r) == Window::Parse::ok;
}

// The offset of the first catalog change or report with seq > after in `s`.
Result<std::optional<std::uint64_t>> Spool::find_first(Window& w, const Segment& s,
                                                       std::uint64_t after) {
  std::uint64_t off = s.first_record;
  auto it = std::upper_bound(s.marks.begin(), s.marks.end(), after,
                             [](std::uint64_t seq, const Mark& m) { return seq < m.seq; });
  if (it != s.marks.begin()) {
    off = std::prev(it)->offset;  // everything before this report has seq <= after
  }
  RecordView r;
  for (;;) {
    auto more = next_record(w, s, off, r);
    if (!more) {
      return tl::unexpected(more.error());
    }
    if (!*more) {
      return std::nullopt;
    }
    if (r.kind != FrameKind::gap && (r.flags & fmt::kFlagCatalogCopy) == 0 && r.seq > after) {
      return off;
    }
    off += r.size;
  }
}

Result<void> Spool::read(std::uint64_t after_seq, std::size_t max_bytes,
                         std::vector<SpoolRecord>& out) {
  std::lock_guard lock(mutex_);
  if (!open_) {
    return fail(std::errc::bad_file_descriptor, "spool: closed");
  }
  std::size_t n = 0;
  std::size_t bytes = 0;
  bool have_content = false;  // a record other than the leading catalog
  std::uint64_t last_report = after_seq;
  auto emit = [&](FrameKind kind, std::uint64_t seq, std::span<const std::uint8_t> payload) {
    if (n == out.size()) {
      out.emplace_back();
    }
    SpoolRecord& rec = out[n++];
    rec.kind = kind;
    rec.seq = seq;
    rec.payload.assign(payload.begin(), payload.end());
    bytes += payload.size();
  };
  auto full = [&](std::size_t next) { return have_content && bytes + next > max_bytes; };

  auto gap_it = std::upper_bound(gaps_.begin(), gaps_.end(), after_seq,
                                 [](std::uint64_t seq, const GapPos& g) { return seq < g.seq; });
  // Emits the gap records that sort before `limit`; false when the batch is full.
  auto emit_gaps = [&](std::uint64_t limit) -> Result<bool> {
    for (; gap_it != gaps_.end() && gap_it->seq < limit; ++gap_it) {
      Segment* gs = find_segment(gap_it->segment);
      if (gs == nullptr) {
        continue;
      }
      auto gfd = open_for_read(*gs);
      if (!gfd) {
        return tl::unexpected(gfd.error());
      }
      Fd closer{*gfd, *gfd != active_fd_};
      Window gw(*gfd, gs->size, gap_buf_);  // r.payload of the scan points into read_buf_
      RecordView r;
      Window::Parse p = gw.parse(gap_it->offset, r);
      if (p == Window::Parse::io_error) {
        return fail_errno(gw.error(), "spool: cannot read " + gs->path);
      }
      if (p != Window::Parse::ok || r.kind != FrameKind::gap) {
        platform::log(Level::warning, kComponent,
                      LogLine("gap record gone bad since open, skipped").kv("segment", gs->path));
        continue;
      }
      if (full(r.payload.size())) {
        return false;
      }
      emit(FrameKind::gap, r.seq, r.payload);
      have_content = true;
    }
    return true;
  };

  bool stopped = false;
  bool first = true;
  for (std::size_t si = 0; si < segments_.size() && !stopped; ++si) {
    const Segment& s = segments_[si];
    if (first && s.max_seq <= after_seq) {
      continue;
    }
    auto fd = open_for_read(s);
    if (!fd) {
      return tl::unexpected(fd.error());
    }
    Fd closer{*fd, *fd != active_fd_};
    Window w(*fd, s.size, read_buf_);
    std::uint64_t off = s.first_record;
    if (first) {
      auto start = find_first(w, s, after_seq);
      if (!start) {
        return tl::unexpected(start.error());
      }
      if (!*start) {
        continue;
      }
      off = **start;
      first = false;
      // The catalog in force at `off`: the segment's own first one or a later change, unless
      // the first record returned is a catalog change itself.
      const CatalogPos* in_force = nullptr;
      for (const CatalogPos& c : s.catalogs) {
        if (c.offset < off) {
          in_force = &c;
        } else if (c.offset == off) {
          in_force = nullptr;
          break;
        } else {
          break;
        }
      }
      if (in_force != nullptr) {
        RecordView r;
        Window::Parse p = w.parse(in_force->offset, r);
        if (p == Window::Parse::io_error) {
          return fail_errno(w.error(), "spool: cannot read " + s.path);
        }
        if (p == Window::Parse::ok) {
          emit(FrameKind::catalog, r.seq, r.payload);
        }
      }
    }
    RecordView r;
    for (;;) {
      auto more = next_record(w, s, off, r);
      if (!more) {
        return tl::unexpected(more.error());
      }
      if (!*more) {
        break;
      }
      off += r.size;
      // Gaps come from gaps_, in their logical place; copies repeat the catalog in force. A
      // catalog change has the seq of the report it precedes.
      if (r.kind == FrameKind::gap || (r.flags & fmt::kFlagCatalogCopy) != 0 ||
          r.seq <= after_seq || (r.kind == FrameKind::report && r.seq <= last_report)) {
        continue;
      }
      auto g = emit_gaps(r.seq);
      if (!g) {
        return tl::unexpected(g.error());
      }
      if (!*g || full(r.payload.size())) {
        stopped = true;
        break;
      }
      emit(r.kind, r.seq, r.payload);
      if (r.kind == FrameKind::report) {
        last_report = r.seq;
        have_content = true;
      }
    }
  }
  if (!stopped) {
    auto g = emit_gaps(std::numeric_limits<std::uint64_t>::max());
    if (!g) {
      return tl::unexpected(g.error());
    }
  }
  // A batch never ends on a catalog: its report would follow in the next batch, which starts
  // with the catalog in force anyway.
  while (n > 0 && out[n - 1].kind == FrameKind::catalog) {
    --n;
  }
  out.resize(n);
  if (read_buf_.size() > 4 * kWindowBytes) {
    read_buf_ = {};  // grown for a large catalog: do not keep megabytes for a rare record
  }
  return {};
}

Result<crypto::Digest> Spool::digest_of_newest() {
  Segment* s = find_segment(newest_segment_);
  if (s == nullptr) {
    return fail(std::errc::no_such_file_or_directory, "spool: the newest report's segment is gone");
  }
  auto fd = open_for_read(*s);
  if (!fd) {
    return tl::unexpected(fd.error());
  }
  Fd closer{*fd, *fd != active_fd_};
  Window w(*fd, s->size, read_buf_);
  RecordView r;
  Window::Parse p = w.parse(newest_offset_, r);
  if (p == Window::Parse::io_error) {
    return fail_errno(w.error(), "spool: cannot read " + s->path);
  }
  if (p != Window::Parse::ok || r.kind != FrameKind::report || r.seq != newest_seq_ ||
      r.payload.size() <= protocol::kSignatureSize) {
    return fail(std::errc::bad_message, "spool: the newest report has gone bad in " + s->path);
  }
  return crypto::sha256(r.payload.first(r.payload.size() - protocol::kSignatureSize));
}

Result<std::optional<ChainPoint>> Spool::last_report() {
  std::lock_guard lock(mutex_);
  if (!open_) {
    return fail(std::errc::bad_file_descriptor, "spool: closed");
  }
  if (newest_seq_ == 0) {
    return std::nullopt;
  }
  if (!newest_digest_) {
    auto d = digest_of_newest();
    if (!d) {
      return tl::unexpected(d.error());
    }
    newest_digest_ = *d;
  }
  return ChainPoint{newest_seq_, *newest_digest_};
}

// --- stats ---------------------------------------------------------------------------------

// Where read(acked) would start: the first catalog change or report with seq > acked. Called
// when the watermark or the oldest segments change; preads at most one mark's span (32 KiB),
// which the uplink has just read, so it comes from the page cache.
void Spool::resolve_unacked() {
  unacked_known_ = false;
  for (const Segment& s : segments_) {
    if (s.max_seq <= acked_) {
      continue;
    }
    unacked_known_ = true;
    unacked_segment_ = s.name;
    unacked_offset_ = s.first_record;  // if the scan fails: an upper bound
    auto fd = open_for_read(s);
    if (!fd) {
      return;
    }
    Fd closer{*fd, *fd != active_fd_};
    Window w(*fd, s.size, read_buf_);
    auto first = find_first(w, s, acked_);
    if (!first) {
      return;
    }
    if (*first) {
      unacked_offset_ = **first;
      return;
    }
    unacked_known_ = false;  // only gap records after the watermark here: look further
  }
}

std::uint64_t Spool::unacked_bytes() const {
  if (!unacked_known_) {
    return 0;
  }
  std::uint64_t total = 0;
  bool counting = false;
  for (const Segment& s : segments_) {
    if (s.name == unacked_segment_) {
      counting = true;
      total += s.size - std::min(unacked_offset_, s.size);
    } else if (counting) {
      total += s.size;
    }
  }
  return total;
}

SpoolStats Spool::stats() const {
  std::lock_guard lock(mutex_);
  SpoolStats st;
  st.segments = segments_.size();
  st.bytes = disk_bytes_;
  for (const Segment& s : segments_) {
    st.records += s.records;
    st.reports += s.reports;
    if (st.oldest_seq == 0 && s.first_report != 0) {
      st.oldest_seq = s.first_report;
    }
    for (const Run& run : s.runs) {
      if (run.last > acked_) {
        st.unacked += run.last - std::max(run.first, acked_ + 1) + 1;
      }
    }
  }
  for (const GapPos& g : gaps_) {
    st.unacked += g.seq > acked_ ? 1 : 0;
  }
  st.unacked_bytes = unacked_bytes();
  st.newest_seq = newest_seq_;
  st.acked_seq = acked_;
  st.acked_persisted_seq = acked_persisted_;
  st.synced_seq = synced_seq_;
  st.unsynced_records = appended_ - synced_;
  st.gaps_created = gaps_created_;
  st.reports_dropped = reports_dropped_;
  st.bytes_cut = bytes_cut_;
  st.bytes_skipped = bytes_skipped_;
  return st;
}

// --- closing -------------------------------------------------------------------------------

Result<void> Spool::close() {
  if (!open_) {
    return {};
  }
  Result<void> result = flush(true);
  std::lock_guard lock(mutex_);
  for (auto& [name, fd] : pending_sync_) {
    ::close(fd);
  }
  pending_sync_.clear();
  if (active_fd_ >= 0) {
    ::close(active_fd_);
    active_fd_ = -1;
  }
  if (dir_fd_ >= 0) {
    ::close(dir_fd_);
    dir_fd_ = -1;
  }
  open_ = false;
  return result;
}

}  // namespace gridnode::agent
