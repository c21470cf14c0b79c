#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "gridnode/crypto/sha256.hpp"
#include "gridnode/platform/log.hpp"
#include "spool_format.hpp"

namespace gridnode::agent {

using platform::fail;
using platform::fail_errno;
using platform::Level;
using platform::LogLine;
using platform::Result;
using protocol::FrameKind;
namespace fmt = spool_format;

// --- reading -------------------------------------------------------------------------------

Result<Spool::ReadFd> Spool::open_for_read(const Segment& s) const {
  ReadFd r;
  if (active_fd_ && &s == &segments_.back()) {
    r.fd = active_fd_.get();
    return r;
  }
  r.owned.reset(::open(s.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!r.owned) {
    return fail_errno(errno, "spool: cannot open " + s.path);
  }
  r.fd = r.owned.get();
  return r;
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
      Window gw(gfd->fd, gs->size, gap_buf_);  // r.payload of the scan points into read_buf_
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
    Window w(fd->fd, s.size, read_buf_);
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
  Window w(fd->fd, s->size, read_buf_);
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
    Window w(fd->fd, s.size, read_buf_);
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

}  // namespace gridnode::agent
