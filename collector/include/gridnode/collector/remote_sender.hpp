#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gridnode/platform/result.hpp"
#include "gridnode/collector/remote_target.hpp"

namespace gridnode::collector {

// Where a target stands in its source file (the sink, or export's archive), kept beside it in
// "<source>.rw-<target name>" (JSON, replaced atomically). `offset` moves only after a 2xx (or a
// batch the target refused for good, per the spec), so the file is the queue: a target down for
// an hour gets the hour when it returns, oldest first.
struct RemotePosition {
  std::uint64_t offset = 0;        // bytes of the source delivered
  std::uint64_t inflight_end = 0;  // > offset: the batch [offset, inflight_end) was being sent
  std::uint64_t resend_from = 0;   // where the re-send window starts (<= offset)
  std::int64_t acked_max_ms = 0;   // the newest sample time the target acknowledged
  std::uint64_t inode = 0;         // of the source: another file starts again at 0
  friend bool operator==(const RemotePosition&, const RemotePosition&) = default;
};
// An absent file is a zero position; an unreadable one is invalid_argument (naming the path).
[[nodiscard]] platform::Result<RemotePosition> read_remote_position(const std::string& path);
[[nodiscard]] platform::Result<void> write_remote_position(const std::string& path,
                                                           const RemotePosition& position);
std::string remote_position_path(const std::string& source, const RemoteTarget& target);

// One target's sender: its own thread tails `source`, turns whole lines into WriteRequests
// (WriteRequestBuilder) and POSTs them with libcurl, so that nothing the collector does for its
// agents ever waits for a target. Memory stays bounded whatever the target does: one batch
// (max_samples) and one read buffer. After a failed request, and at start, it first sends again
// what the target acknowledged within resend_window of the newest (a 4xx for those is ignored:
// Prometheus refuses samples older than its newest, which it holds). docs/collector.md.
class RemoteSender {
 public:
  RemoteSender(RemoteTarget target, std::string source);
  ~RemoteSender();  // stop()
  RemoteSender(const RemoteSender&) = delete;
  RemoteSender& operator=(const RemoteSender&) = delete;

  // Reads the position and starts the thread. Errors: an unreadable position file.
  [[nodiscard]] platform::Result<void> start();
  // Asks the thread to stop (an in-flight request is aborted) and joins it.
  void stop();
  // Bytes of the source delivered (the position's offset). Any thread.
  std::uint64_t delivered() const { return delivered_.load(); }
  const std::string& source() const { return source_; }
  const RemoteTarget& target() const { return target_; }

 private:
  class Impl;
  RemoteTarget target_;
  std::string source_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<std::uint64_t> delivered_{0};
};

// The senders of one collector (serve) or exporter.
class RemoteWriters {
 public:
  [[nodiscard]] platform::Result<void> start(const std::vector<RemoteTarget>& targets,
                                             const std::string& source);
  void stop();
  // Waits until every sender caught up with the source (export --drain); false at the deadline.
  bool wait_caught_up(std::chrono::steady_clock::duration timeout);
  bool empty() const { return senders_.empty(); }

 private:
  std::vector<std::unique_ptr<RemoteSender>> senders_;
};

}  // namespace gridnode::collector
