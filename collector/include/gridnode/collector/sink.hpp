#pragma once

#include <sys/types.h>

#include <asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/collector/ingest.hpp"
#include "gridnode/collector/record_format.hpp"
#include "gridnode/collector/records.hpp"

namespace gridnode::collector {

// One node's batch of records for a sink, as NodeIngest wrote them with the sink's encoder.
struct SinkBatch {
  std::string_view node;
  std::string_view region, site;  // the node's labels from its latest report ("" until one)
  std::uint64_t seq = 0;          // the node's chain position after the batch
  crypto::Digest digest{};
  std::string_view text;                // the records, one after the other
  std::span<const RecordInfo> records;  // where each is (when the sink wants_records())
};

// Where verified records go: the collector's one seam to its storage. The Store and the ingest
// code talk only to this; which sink it is (a JSONL file, JetStream) is chosen once, by
// open_sink (open_sink.hpp). Nothing is acknowledged to an agent before write's `done` got a
// value: the records are then durable.
class Sink {
 public:
  virtual ~Sink() = default;

  // The ingest options for this sink's records: `base` (the operator's and tests' settings) with
  // the sink's encoder and what else its records need (JetStream: the catalog refresh).
  virtual IngestOptions ingest_options(IngestOptions base) const = 0;
  // Whether write() needs each record's RecordInfo (JetStream publishes each record on its own).
  virtual bool wants_records() const = 0;

  // Once, before anything is written: hands `replay` every record that rebuilds the collector's
  // state at start-up, in order (JSONL: the whole file; JetStream: none, a node's records are
  // read when it connects, load()).
  struct Recovered {
    std::uint64_t unreadable = 0;  // whole records that were not readable (skipped)
    std::uint64_t bytes_cut = 0;   // a torn tail cut
  };
  using Replay = std::function<void(const StoredRecord&)>;
  [[nodiscard]] virtual platform::Result<Recovered> recover(const Replay& replay) = 0;

  // When `node` connects. `known`: the caller holds the node's state from this sink's last
  // load() or successful write(). `current` in the answer: that state is the sink's, nothing to
  // rebuild; else the node's state is `replay` (its records to restore, in order), resumed at
  // `seq`/`digest` when those leave the chain position unknown. May block for a round trip or
  // a takeover's replay; an error means "refuse the session, the agent retries".
  struct Loaded {
    bool current = false;
    std::vector<StoredRecord> replay;
    std::uint64_t unreadable = 0;
    std::uint64_t seq = 0;
    crypto::Digest digest{};
  };
  [[nodiscard]] virtual platform::Result<Loaded> load(const std::string& node, bool known) = 0;
  // load() without blocking the loop: `done` gets what load() would return, on the loop, or
  // before load_async returns (this default, for a sink whose load never waits: JSONL). A sink
  // that reads elsewhere (JetStream) reads on a thread of its own and adopts the result on the
  // loop; a sink destroyed first never calls `done`. The caller keeps the node's writes out of
  // the way meanwhile (Store: no batch of the node is committed while it loads).
  using LoadDone = std::function<void(platform::Result<Loaded>)>;
  virtual void load_async(const std::string& node, bool known, LoadDone done) {
    done(load(node, known));
  }

  // Stores `batch` (copied: its views may go once write returns) and calls `done` once it is
  // durable, or failed: on the loop, or before write returns. An error with
  // errc::resource_unavailable_try_again means "nothing acknowledged, the agent retries" (the
  // node's state is loaded again when it comes back); any other error means the sink failed.
  using Done = std::function<void(platform::Result<void>)>;
  virtual void write(const SinkBatch& batch, Done done) = 0;

  virtual std::string describe() const = 0;
};

// A JSON Lines file, appended with write(2) and made durable with fdatasync: the JSONL sink's
// file, and export's archive. read_lines hands every whole line to `replay` and cuts a torn last
// line left by a crash mid-write.
class JsonlFile {
 public:
  using LineReplay = std::function<void(std::string_view line)>;
  // `datasync`: fdatasync(2), or a test's stand-in (which calls it, counting).
  using Datasync = std::function<int(int fd)>;
  [[nodiscard]] static platform::Result<std::unique_ptr<JsonlFile>> open(const std::string& path,
                                                                         Datasync datasync = {});
  ~JsonlFile();
  JsonlFile(const JsonlFile&) = delete;
  JsonlFile& operator=(const JsonlFile&) = delete;

  // Reads the file through (once, before the first append); returns the bytes cut.
  [[nodiscard]] platform::Result<std::size_t> read_lines(const LineReplay& replay);
  // Appends whole JSON lines (each ending in '\n').
  [[nodiscard]] platform::Result<void> append(std::string_view lines);
  // Makes everything appended so far durable.
  [[nodiscard]] platform::Result<void> sync();
  const std::string& path() const { return path_; }

 private:
  JsonlFile(std::string path, int fd, Datasync datasync)
      : path_(std::move(path)), fd_(fd), datasync_(std::move(datasync)) {}
  std::string path_;
  int fd_ = -1;
  Datasync datasync_;
  off_t size_ = 0;  // bytes of whole lines in the file
};

// The JSONL sink: a JsonlFile, written by group commit. A batch is queued (write() copies it);
// one flush on the loop, queued by the first batch after the last flush, appends every queued
// batch with one write(2), makes them durable with one fdatasync, then calls each batch's
// `done`. Every session whose batch arrived while the loop was busy (the previous fdatasync
// included) shares that fsync, and none is acknowledged before it returned. A failed write or
// sync fails every queued batch and every later one (the collector stops: its memory is ahead of
// the file; a restart replays it).
class JsonlSink final : public Sink {
 public:
  struct Options {
    JsonlFile::Datasync datasync;  // tests: count the fdatasyncs
  };
  [[nodiscard]] static platform::Result<std::unique_ptr<JsonlSink>> open(
      asio::io_context& io, const std::string& path, Options options = {});

  IngestOptions ingest_options(IngestOptions base) const override;
  bool wants_records() const override { return false; }
  platform::Result<Recovered> recover(const Replay& replay) override;
  // Always current: the file was replayed at start and this collector is its only writer.
  platform::Result<Loaded> load(const std::string& node, bool known) override;
  void write(const SinkBatch& batch, Done done) override;
  std::string describe() const override { return file_->path(); }

  std::uint64_t flushes() const { return flushes_; }

 private:
  JsonlSink(asio::io_context& io, std::unique_ptr<JsonlFile> file)
      : io_(io), file_(std::move(file)) {}
  void flush();

  asio::io_context& io_;
  std::unique_ptr<JsonlFile> file_;
  std::string queued_;             // the queued batches' lines (keeps its capacity)
  std::vector<Done> waiting_;      // their `done`, in order
  std::vector<Done> flushing_;     // the flush's, swapped with waiting_ (keeps its capacity)
  bool flush_posted_ = false;
  std::optional<platform::Error> failed_;  // a failed flush: every later batch fails too
  std::uint64_t flushes_ = 0;
  // The posted flush holds a weak reference: a sink destroyed first is not flushed.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace gridnode::collector
