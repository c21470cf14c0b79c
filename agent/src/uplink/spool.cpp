#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "gridnode/platform/files.hpp"
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

std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (std::uint64_t{1} << 20)) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  if (bytes >= (std::uint64_t{1} << 10)) {
    return std::to_string(bytes >> 10) + " KiB";
  }
  return std::to_string(bytes) + " B";
}

std::string spool_dir(const std::string& state_dir) { return state_dir + "/spool"; }

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
  // open() failed half-way: what recover() had opened closes with its UniqueFd.
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
  if (options.signer != nullptr && !protocol::valid_node_id(options.node_id)) {
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
  platform::UniqueFd fd;
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
    if (active_fd_ && appended_ != synced_) {
      // A duplicate, so that the writer may retire or close its descriptor meanwhile.
      fd.reset(::dup(active_fd_.get()));
      if (!fd) {
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
  if (fd) {
    if (::fdatasync(fd.get()) != 0) {
      note(errno, "fdatasync of the current segment");
    }
    fd.reset();
  }
  for (auto& [name, pfd] : syncing_) {
    if (::fdatasync(pfd.get()) != 0) {
      note(errno, "fdatasync of segment " + std::to_string(name));
    }
  }
  syncing_.clear();  // closes them
  if (dir && ::fsync(dir_fd_.get()) != 0) {
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

Result<void> Spool::set_gap_signer(GapSigner* signer) {
  std::lock_guard lock(mutex_);
  if (signer != nullptr && !protocol::valid_node_id(options_.node_id)) {
    return fail(std::errc::invalid_argument,
                "spool: gap records need a valid node id, not \"" + options_.node_id + "\"");
  }
  options_.signer = signer;
  return {};
}

// --- stats ---------------------------------------------------------------------------------

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
  pending_sync_.clear();
  active_fd_.reset();
  dir_fd_.reset();
  open_ = false;
  return result;
}

}  // namespace gridnode::agent
