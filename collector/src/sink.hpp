#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::collector {

// Where verified records go. The collector acknowledges a report only after sync() returned:
// the record is then durable. One implementation is the JSONL file below; a distributed log
// (NATS JetStream) is another.
class Sink {
 public:
  virtual ~Sink() = default;
  // Appends whole JSON lines (each ending in '\n').
  [[nodiscard]] virtual platform::Result<void> append(std::string_view lines) = 0;
  // Makes everything appended so far durable.
  [[nodiscard]] virtual platform::Result<void> sync() = 0;
  virtual std::string describe() const = 0;
};

// A JSON Lines file, appended with write(2) and made durable with fdatasync. Opening it replays
// every whole line to `replay` (so the collector rebuilds its per-node state from the records
// alone) and cuts a torn last line left by a crash mid-write.
class JsonlSink final : public Sink {
 public:
  using Replay = std::function<void(std::string_view line)>;
  [[nodiscard]] static platform::Result<std::unique_ptr<JsonlSink>> open(const std::string& path,
                                                                         const Replay& replay);
  ~JsonlSink() override;

  platform::Result<void> append(std::string_view lines) override;
  platform::Result<void> sync() override;
  std::string describe() const override { return path_; }
  // Bytes cut from a torn tail when the file was opened.
  std::size_t cut_at_open() const { return cut_; }

 private:
  JsonlSink(std::string path, int fd, std::size_t cut, off_t size)
      : path_(std::move(path)), fd_(fd), cut_(cut), size_(size) {}
  std::string path_;
  int fd_ = -1;
  std::size_t cut_ = 0;
  off_t size_ = 0;  // bytes of whole lines in the file
};

}  // namespace gridnode::collector
