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

// --- recovery ------------------------------------------------------------------------------

Result<void> Spool::recover() {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail_errno(errno, "spool: cannot create " + dir_);
  }
  dir_fd_.reset(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd_) {
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
    active_fd_.reset(::open(segments_.back().path.c_str(), O_RDWR | O_CLOEXEC));
    if (!active_fd_) {
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
  platform::UniqueFd file(::open(s.path.c_str(), O_RDWR | O_CLOEXEC));
  if (!file) {
    return fail_errno(errno, "spool: cannot open " + s.path);
  }
  const int fd = file.get();
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

}  // namespace gridnode::agent
