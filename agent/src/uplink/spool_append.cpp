#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/agent/spool_eviction.hpp"
#include "spool_format.hpp"

namespace gridnode::agent {

using platform::fail;
using platform::fail_errno;
using platform::Level;
using platform::LogLine;
using platform::Result;
using protocol::FrameKind;
namespace fmt = spool_format;

namespace {

std::uint64_t now_unix_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

// --- appending -----------------------------------------------------------------------------

void Spool::retire_active() {
  if (!active_fd_) {
    return;
  }
  if (pending_sync_.size() >= kMaxPendingSync) {
    pending_sync_.erase(pending_sync_.begin());
  }
  pending_sync_.emplace_back(segments_.back().name, std::move(active_fd_));
}

// Removes segments_.front() from the index (its file is gone already).
void Spool::forget_front() {
  const Segment& s = segments_.front();
  for (auto it = pending_sync_.begin(); it != pending_sync_.end(); ++it) {
    if (it->first == s.name) {
      pending_sync_.erase(it);  // closed: nothing left to make durable
      break;
    }
  }
  if (segments_.size() == 1) {
    active_fd_.reset();
  }
  std::erase_if(gaps_, [&](const GapPos& g) { return g.segment == s.name; });
  disk_bytes_ -= s.size;
  segments_.pop_front();
  dir_dirty_ = true;
}

// What dropping `s` loses: its reports not acknowledged yet, and the ranges of the gap records
// it holds that were not acknowledged either (the new gap record must cover those too).
SegmentLoss Spool::segment_loss(const Segment& s) const {
  SegmentLoss loss;
  loss.bytes = s.size;
  for (const Run& run : s.runs) {
    if (run.last > acked_) {
      const std::uint64_t first = std::max(run.first, acked_ + 1);
      loss.from = std::min(loss.from, first);
      loss.to = std::max(loss.to, run.last);
      loss.lost += run.last - first + 1;
    }
  }
  for (const GapPos& g : gaps_) {
    if (g.segment == s.name && g.seq > acked_) {
      loss.from = std::min(loss.from, std::max(g.from, acked_ + 1));
      loss.to = std::max(loss.to, g.to);
    }
  }
  return loss;
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
  bool roll = !active_fd_ || active_broken_ || segments_.back().size >= segment_bytes_;

  // Plan the drops: the oldest segments whose bytes make room. Nothing is removed before this
  // report and its gap record are written, so a failed write or a kill -9 in between loses
  // nothing; the bound holds again when append() returns.
  EvictionRequest request;
  request.max_bytes = options_.max_bytes;
  request.disk_bytes = disk_bytes_;
  request.segments = segments_.size();
  request.roll = roll;
  request.record_bytes =
      record_size(envelope.size()) + (catalog_change ? record_size(catalog.size()) : 0);
  request.roll_bytes = fmt::kSegmentMagic.size() +
                       (!catalog_change && !catalog_.empty() ? record_size(catalog_.size()) : 0);
  request.gap_bytes = options_.signer != nullptr ? gap_reserve_ : 0;
  request.pending_gap = pending_gap_;
  auto plan = plan_eviction(request, [this](std::size_t i) { return segment_loss(segments_[i]); });
  if (!plan) {
    return tl::unexpected(plan.error());
  }
  roll = plan->roll;
  const std::size_t drops = plan->drops;
  const std::uint64_t from = plan->from;
  const std::uint64_t to = plan->to;
  const std::uint64_t lost = plan->lost;

  protocol::Bytes gap_envelope;
  protocol::GapRecord gap;
  if (to > 0 && options_.signer != nullptr) {
    gap = {options_.node_id, from, to, now_unix_ns(), gap_reason_};
    auto signed_gap = options_.signer->sign_gap(gap);
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

  platform::UniqueFd created;
  int fd = active_fd_.get();
  std::uint64_t base = 0;
  std::string path;
  if (roll) {
    path = segment_path(seq);
    created.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    fd = created.get();
    if (!created) {
      return fail_errno(errno, "spool: cannot create " + path);
    }
  } else {
    base = segments_.back().size;
  }
  if (auto w = platform::write_all(fd, buf_, base); !w) {
    if (roll) {
      created.reset();
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
    active_fd_ = std::move(created);
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

}  // namespace gridnode::agent
