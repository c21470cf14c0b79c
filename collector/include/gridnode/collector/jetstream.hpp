#pragma once

#include <nats/nats.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/collector/sink.hpp"
#include "gridnode/collector/stream_record.hpp"

// The collectors' shared, replicated log: NATS JetStream (docs/jetstream.md). Every verified
// record is one message of the stream GRIDNODE_REPORTS on gridnode.reports.<region>.<site>.<node>,
// each published expecting the node's last message on it (Nats-Expected-Last-Subject-Sequence),
// so that two collectors can never both extend one chain; the key-value bucket GRIDNODE_CHAIN
// indexes where each node's catalog and last keyframe are.
namespace gridnode::collector {

// The settings the stream and the bucket are created with (and checked against when they exist).
struct JetStreamOptions {
  std::string servers;  // nats://HOST:PORT[,nats://HOST:PORT…]
  std::string stream = "GRIDNODE_REPORTS";
  std::string bucket = "GRIDNODE_CHAIN";
  int replicas = 1;
  std::chrono::seconds max_age{std::chrono::hours(24 * 7)};
  std::int64_t max_bytes = std::int64_t{16} << 30;  // 16 GiB
  // Longer than the agents' longest reconnect backoff (60 s, 90 s with jitter): an agent that
  // republishes what a crashed collector had published but not yet acknowledged is deduplicated.
  std::chrono::seconds duplicate_window{std::chrono::minutes(10)};
  std::chrono::milliseconds timeout{5000};  // for a publish acknowledgement and each request
  // Publish the JSONL sink's lines, catalogs on the node's subject, as collectors did before
  // compact stream records. Only for comparing the two (bench/collector_bench.cpp); consumers
  // read both formats.
  bool json_lines = false;
  // Tests only: called by JetStreamSink::load between its steps ("last", "chain", "catalog",
  // "replay", "record" after each record replayed),
  // so that a test can stop the server at a given point. Empty: nothing.
  std::function<void(std::string_view step)> on_load_step;
};

// A subject token: '.', '*', '>', whitespace and '%' are escaped as %XX; empty is "_".
std::string subject_token(std::string_view s);
// gridnode.reports.<region>.<site>.<node>
std::string report_subject(std::string_view region, std::string_view site, std::string_view node);

// A node's position. The stream is the truth: `last_at` is the stream sequence of the node's last
// message on its subject, and every record of the node is published with
// Nats-Expected-Last-Subject-Sequence = last_at, so that JetStream itself refuses a record of a
// collector whose view of the node is behind (another collector extended it). The bucket's value
// (seq digest catalog_at keyframe_at) is an index: where the records that rebuild a collector's
// state (the node's catalog, its last keyframe) are, so that a takeover reads from there.
struct ChainState {
  std::uint64_t seq = 0;
  crypto::Digest digest{};
  std::uint64_t catalog_at = 0;   // stream sequence of the node's latest catalog record
  std::uint64_t keyframe_at = 0;  // stream sequence of its latest keyframe report
  std::uint64_t revision = 0;     // the bucket entry's revision (0: no entry yet)
  std::uint64_t last_at = 0;      // stream sequence of the node's last message (0: none); not in
  std::string subject;            // the bucket: read from the stream, with that message's subject
  std::string encode() const;     // "seq digest catalog_at keyframe_at"
  [[nodiscard]] static platform::Result<ChainState> parse(std::string_view text,
                                                          std::uint64_t revision);
};

// One NATS connection with its JetStream context. Not copyable; destroying it closes the
// connection (no callback runs after that).
class NatsClient {
 public:
  // Connects to `servers` (comma-separated URLs), retrying the others of the list on failure.
  // `ack`, when given, receives every asynchronous publish acknowledgement, on a NATS thread.
  [[nodiscard]] static platform::Result<std::unique_ptr<NatsClient>> connect(
      const std::string& servers, const std::string& name, std::chrono::milliseconds timeout,
      jsPubAckHandler ack = nullptr, void* ack_closure = nullptr);
  ~NatsClient();
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;

  natsConnection* connection() const { return nc_; }
  jsCtx* js() const { return js_; }

 private:
  NatsClient() = default;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// Options of an ordered consumer (no acks, the library re-creates it after a gap) on `stream`.
jsSubOptions ordered_consumer(const std::string& stream, jsDeliverPolicy policy,
                              std::uint64_t start_seq = 0);

// A NATS or JetStream status as an Error: "what: status text (jetstream error code)".
platform::Error nats_error(natsStatus s, jsErrCode code, const std::string& what);

// The bytes of the catalog with `digest`, from the last message of its subject (catalog_subject)
// in `stream`; nothing when it is not there (never published, or aged out). Blocks for one round
// trip; may be called from a subscription's callback (the reply comes on another thread).
std::optional<protocol::Bytes> fetch_catalog(jsCtx* js, const std::string& stream,
                                             const crypto::Digest& digest);

// Creates the stream and the bucket with `o`'s settings, or checks that the existing ones have
// them: a difference is an error naming the setting (max_age, max_bytes, replicas, duplicates,
// subjects, retention, storage).
[[nodiscard]] platform::Result<void> ensure_stream(jsCtx* js, const JetStreamOptions& o);
[[nodiscard]] platform::Result<kvStore*> ensure_bucket(jsCtx* js, const JetStreamOptions& o);

// The serve side: a Sink that publishes batches asynchronously and pipelined, and calls back on
// the loop once JetStream acknowledged every record (and, when where a takeover reads from moved,
// the node's bucket entry). A node's position (ChainState) is the sink's own: the stream
// sequence its next record must fence on, read by load() and moved on by each write.
class JetStreamSink final : public Sink {
 public:
  [[nodiscard]] static platform::Result<std::unique_ptr<JetStreamSink>> open(
      asio::io_context& io, const JetStreamOptions& o);
  ~JetStreamSink() override;

  // Compact stream records (JSON lines with JetStreamOptions::json_lines), each catalog written
  // again before its last copy ages out of the stream.
  IngestOptions ingest_options(IngestOptions base) const override;
  bool wants_records() const override { return true; }
  // Nothing at start: any collector can take any node over, so a node is read when it connects.
  platform::Result<Recovered> recover(const Replay&) override { return Recovered{}; }
  // The node's position as the stream has it now. `known` and the node's last message still the
  // one this sink wrote or read last: current, nothing else is read. Else the node's records to
  // replay (its catalog, then its records from its last keyframe to the stream's end, and any
  // other catalog those name), so that a collector taking the node over resumes where the stream
  // ends and decodes the node's next deltas. Blocks the calling thread for at most
  // JetStreamOptions::timeout in all (a few round trips; a replay of up to one keyframe interval
  // of records on a takeover). Fails on any error or timeout (only "not found" means "nothing
  // there"): a replay cut short would leave the node's next deltas undecodable.
  platform::Result<Loaded> load(const std::string& node, bool known) override;
  // The same reads on one of the sink's kLoaders threads (only the NATS client, thread-safe, and
  // the options are used there), so that a takeover's replay does not hold every other session's
  // reports; the result is adopted (the node's position) and `done` called on the loop. Loads of
  // several nodes run side by side, kLoaders at a time. The sink's destructor waits for the reads
  // in flight (each ends within JetStreamOptions::timeout) and drops their results.
  void load_async(const std::string& node, bool known, LoadDone done) override;
  static constexpr std::size_t kLoaders = 4;
  // Publishes each stream record of the batch (one message each, its RecordInfo::id as
  // Nats-Msg-Id): catalogs at once on their own subjects, the node's reports and gap records one
  // after the other on its subject, each expecting the node's last message to be the one before
  // (the node's position, then each acknowledged sequence), then writes the node's bucket entry
  // if its catalog_at or keyframe_at moved (where a takeover starts reading); calls `done` on the
  // loop, or with an error (a failed publish, a timeout, or JetStream refusing a record because
  // another collector extended the node: errc::resource_unavailable_try_again, "moved on by
  // another collector"; the records of the batch before the refused one may be stored, and are
  // then part of the node's one chain). After an error the node's position is read again.
  void write(const SinkBatch& batch, Done done) override;

  std::string describe() const override { return options_.servers; }

 private:
  // What read_node found: the node's position, and the messages to replay unless `current`.
  struct NodeRead {
    ChainState state;
    std::vector<std::string> replay;
    bool current = false;
  };
  // Any thread: reads the stream, touches nothing of the sink's but client_ and options_.
  [[nodiscard]] platform::Result<NodeRead> read_node(const std::string& node,
                                                     std::optional<std::uint64_t> known_last_at);
  // The loop: where the node's next record must fence, if this sink trusts its memory.
  std::optional<std::uint64_t> known_last_at(const std::string& node, bool known);
  // The loop: a read's result becomes the node's position (and the records to replay).
  platform::Result<Loaded> adopt(const std::string& node, platform::Result<NodeRead> read);
  // A node's position as this sink last wrote or read it.
  struct Position {
    ChainState chain;
    bool valid = false;  // false: may differ from the stream; read it again at the next load
    // Bumped by each load that reads the stream: a batch published before must not write its
    // position over the one that replaced it (the load may have read the stream before the
    // batch's records landed, and the two would then disagree).
    std::uint64_t generation = 0;
  };
  using Published = std::function<void(platform::Result<ChainState>)>;
  void publish_batch(const std::string& node, const std::string& region, const std::string& site,
                     std::shared_ptr<const std::string> text,
                     const std::vector<RecordInfo>& records, const ChainState& before,
                     ChainState after, Published done);
  struct Batch {
    std::string node;
    std::string subject;             // the node's
    std::uint64_t fence = 0;         // the expected last sequence on `subject` (0: no message)
    std::vector<std::size_t> chain;  // records on `subject`, published one after the other
    std::size_t next = 0;            // the next of `chain` to publish
    std::size_t pending = 0;
    bool kv_stage = false;
    std::string failed;  // non-empty: why
    bool conflict = false;
    ChainState before, after;
    std::vector<RecordInfo> records;  // kind and keyframe, to place catalog_at / keyframe_at
    std::shared_ptr<const std::string> text;  // the records' bytes, until the last is published
    Published done;
    // When the batch fails unacknowledged (options_.timeout after it was published). One timer
    // for all batches (expire_batches), not one armed and cancelled per batch: at one report per
    // batch that was two timerfd updates and a handler per report.
    std::chrono::steady_clock::time_point deadline;
  };
  struct Token {
    std::uint64_t batch = 0;
    int record = -1;  // -1: the chain update
  };
  struct Ack {
    Token token;
    bool ok = false;
    std::uint64_t seq = 0;  // stream sequence (the bucket's revision for the chain update)
    bool conflict = false;  // the compare-and-set found another revision
    std::string why;
  };
  JetStreamSink(asio::io_context& io, JetStreamOptions o) : io_(io), options_(std::move(o)) {}
  void drain_acks();
  static void on_ack_thread(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  void on_ack(Token t, bool ok, std::uint64_t seq, bool conflict, std::string why);
  bool publish(std::uint64_t batch, int record, natsMsg* msg, jsPubOptions* opts);
  void publish_next(std::uint64_t id, Batch& b);
  void publish_chain(std::uint64_t id, Batch& b);
  void finish(std::uint64_t id);
  // Arms deadlines_ for the earliest batch deadline, unless it is armed already.
  void arm_deadlines();
  // deadlines_ fired: fails every batch past its deadline, then arms for the next one.
  void expire_batches();

  asio::io_context& io_;
  JetStreamOptions options_;
  std::unique_ptr<NatsClient> client_;
  kvStore* kv_ = nullptr;
  std::mutex mu_;  // guards inflight_, acks_ and drain_posted_ (NATS threads and the loop)
  std::unordered_map<natsMsg*, Token> inflight_;
  std::vector<Ack> acks_;                             // received, not yet handled on the loop
  bool drain_posted_ = false;                         // a drain_acks() is queued on the loop
  std::unordered_map<std::uint64_t, Batch> batches_;  // loop only
  std::uint64_t next_batch_ = 0;
  std::unique_ptr<asio::steady_timer> deadlines_;  // the batches' (loop only)
  bool deadlines_armed_ = false;
  std::unordered_map<std::string, Position> positions_;  // loop only, by node
  // load_async's reads. Created with the sink, joined first when it goes; `alive_` tells a
  // result posted meanwhile that the sink is gone.
  std::unique_ptr<asio::thread_pool> loaders_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gridnode::collector
