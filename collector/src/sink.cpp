#include "gridnode/collector/sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <vector>

#include "gridnode/platform/fd.hpp"

namespace gridnode::collector {

platform::Result<std::unique_ptr<JsonlFile>> JsonlFile::open(const std::string& path,
                                                             Datasync datasync) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_APPEND, 0640);
  if (fd < 0) {
    return platform::fail_errno(errno, "cannot open sink " + path);
  }
  return std::unique_ptr<JsonlFile>(new JsonlFile(path, fd, std::move(datasync)));
}

platform::Result<std::size_t> JsonlFile::read_lines(const LineReplay& replay) {
  // Read it through in blocks; hand each whole line to `replay`; remember where the last
  // newline is: anything after it is a record cut short by a crash.
  std::vector<char> block(1 << 20);
  std::string carry;
  off_t offset = 0;
  off_t good_end = 0;
  for (;;) {
    ssize_t n = ::pread(fd_, block.data(), block.size(), offset);
    if (n < 0) {
      return platform::fail_errno(errno, "cannot read sink " + path_);
    }
    if (n == 0) {
      break;
    }
    std::string_view chunk(block.data(), static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl = chunk.find('\n'); nl != std::string_view::npos;
         nl = chunk.find('\n', start)) {
      if (!carry.empty()) {
        carry.append(chunk.substr(start, nl - start));
        replay(carry);
        carry.clear();
      } else {
        replay(chunk.substr(start, nl - start));
      }
      start = nl + 1;
      good_end = offset + static_cast<off_t>(start);
    }
    carry.append(chunk.substr(start));
    offset += n;
  }
  const std::size_t cut = static_cast<std::size_t>(offset - good_end);
  if (cut > 0 && (::ftruncate(fd_, good_end) != 0 || ::fdatasync(fd_) != 0)) {
    return platform::fail_errno(errno, "cannot cut the torn tail of sink " + path_);
  }
  size_ = good_end;
  return cut;
}

JsonlFile::~JsonlFile() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

platform::Result<void> JsonlFile::append(std::string_view lines) {
  if (auto w = platform::write_all(fd_, lines); !w) {
    // A partial append (disk full) must not leave half a line for the next one to follow.
    (void)::ftruncate(fd_, size_);
    return platform::fail(w.error().code, "cannot write sink " + path_);
  }
  size_ += static_cast<off_t>(lines.size());
  return {};
}

platform::Result<void> JsonlFile::sync() {
  if ((datasync_ ? datasync_(fd_) : ::fdatasync(fd_)) != 0) {
    return platform::fail_errno(errno, "cannot sync sink " + path_);
  }
  return {};
}

platform::Result<std::unique_ptr<JsonlSink>> JsonlSink::open(asio::io_context& io,
                                                             const std::string& path,
                                                             Options options) {
  auto file = JsonlFile::open(path, std::move(options.datasync));
  if (!file) {
    return tl::unexpected(file.error());
  }
  return std::unique_ptr<JsonlSink>(new JsonlSink(io, std::move(*file)));
}

IngestOptions JsonlSink::ingest_options(IngestOptions base) const {
  base.encoder = &json_lines_encoder;
  return base;
}

platform::Result<Sink::Recovered> JsonlSink::recover(const Replay& replay) {
  Recovered out;
  RecordKeys keys;  // reused from line to line
  auto cut = file_->read_lines([&](std::string_view line) {
    if (auto rec = read_json_record(line, keys)) {
      replay(*rec);
    } else {
      ++out.unreadable;
    }
  });
  if (!cut) {
    return tl::unexpected(cut.error());
  }
  out.bytes_cut = *cut;
  return out;
}

platform::Result<Sink::Loaded> JsonlSink::load(const std::string&, bool) {
  if (failed_) {
    return tl::unexpected(*failed_);
  }
  Loaded out;
  out.current = true;
  return out;
}

void JsonlSink::write(const SinkBatch& batch, Done done) {
  if (failed_) {
    done(tl::unexpected(*failed_));
    return;
  }
  queued_.append(batch.text);
  waiting_.push_back(std::move(done));
  if (flush_posted_) {
    return;
  }
  // After the handlers the loop has ready now: the other sessions whose batches came meanwhile
  // queue theirs behind this one, and share its fdatasync.
  flush_posted_ = true;
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) {
      flush();
    }
  });
}

void JsonlSink::flush() {
  flush_posted_ = false;
  flushing_.swap(waiting_);
  platform::Result<void> r = file_->append(queued_);
  queued_.clear();
  if (r) {
    r = file_->sync();
  }
  ++flushes_;
  if (!r) {
    failed_ = r.error();
  }
  // Only now, with the lines durable (or failed), does any of these batches' sessions hear back.
  for (Done& done : flushing_) {
    done(r);
  }
  flushing_.clear();
}

}  // namespace gridnode::collector
