#include "store.hpp"

#include "gridnode/crypto/base64.hpp"

namespace gridnode::collector {
namespace {

struct ParsedLine {
  protocol::FrameKind kind = protocol::FrameKind::report;
  std::string node;
  std::uint64_t seq = 0;  // of a report
  std::vector<std::uint8_t> raw;
};

// A sink line or stream message (JSON line or stream record) back to what the node sent (the
// record's signed bytes), or nothing. `keys` is scratch space reused from line to line.
std::optional<ParsedLine> parse_line(std::string_view line, RecordKeys& keys) {
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(line.data()),
                                            line.size());
  if (is_stream_record(bytes)) {
    // A JetStream message of this collector's own format (a takeover's replay).
    auto rec = parse_stream_record(bytes);
    if (!rec) {
      return std::nullopt;
    }
    return ParsedLine{rec->kind == StreamKind::catalog  ? protocol::FrameKind::catalog
                      : rec->kind == StreamKind::report ? protocol::FrameKind::report
                                                        : protocol::FrameKind::gap,
                      std::string(rec->node), rec->header.seq,
                      std::vector<std::uint8_t>(rec->payload.begin(), rec->payload.end())};
  }
  if (!read_record_keys(line, keys)) {
    return std::nullopt;
  }
  auto raw = crypto::from_base64(keys.raw);
  if (!raw) {
    return std::nullopt;
  }
  return ParsedLine{keys.type == "catalog"  ? protocol::FrameKind::catalog
                    : keys.type == "report" ? protocol::FrameKind::report
                                            : protocol::FrameKind::gap,
                    keys.node, keys.seq, std::move(*raw)};
}

}  // namespace

platform::Result<std::unique_ptr<Store>> Store::open_jsonl(const std::string& path,
                                                           IngestOptions options) {
  std::unique_ptr<Store> store(new Store(options));
  auto sink = JsonlSink::open(path, [&store](std::string_view line) { store->replay(line); });
  if (!sink) {
    return tl::unexpected(sink.error());
  }
  store->stats_.bytes_cut = (*sink)->cut_at_open();
  store->sink_ = std::move(*sink);
  return store;
}

platform::Result<std::unique_ptr<Store>> Store::open_jetstream(asio::io_context& io,
                                                               const JetStreamOptions& jetstream,
                                                               IngestOptions options) {
  // The stream carries compact records, not JSON lines (docs/jetstream.md, "Message format").
  options.stream_records = !jetstream.json_lines;
  // A node's catalog is written again before its last copy ages out of the stream, and after the
  // duplicate window, which would drop it (same message id): halfway between the two.
  const auto refresh = (jetstream.max_age + jetstream.duplicate_window) / 2;
  options.catalog_refresh_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(refresh).count());
  std::unique_ptr<Store> store(new Store(options));
  auto sink = JetStreamSink::open(io, jetstream);
  if (!sink) {
    return tl::unexpected(sink.error());
  }
  store->jetstream_ = std::move(*sink);
  return store;
}

std::string Store::describe() const {
  return jetstream_ ? jetstream_->describe() : sink_->describe();
}

void Store::replay(std::string_view line) {
  auto p = parse_line(line, keys_);
  if (!p) {
    ++stats_.lines_unreadable;
    return;
  }
  auto& slot = nodes_[p->node];
  if (!slot.ingest) {
    // The key arrives with the node's next connection (its certificate); restoring needs none.
    slot.ingest = std::make_unique<NodeIngest>(p->node, std::nullopt, options_);
  }
  if (auto r = slot.ingest->restore(p->kind, p->raw); !r) {
    ++stats_.lines_unreadable;
    return;
  }
  ++stats_.records_replayed;
  stats_.nodes = nodes_.size();
}

void Store::replay_into(NodeIngest& node, std::string_view line) {
  // Every record up to the stream's end: the node resumes there (the agent is told so in its
  // welcome), also after records a collector published but died before acknowledging.
  auto p = parse_line(line, keys_);
  if (!p || p->node != node.node_id() || !node.restore(p->kind, p->raw)) {
    ++stats_.lines_unreadable;
    return;
  }
  ++stats_.records_replayed;
}

platform::Result<NodeIngest*> Store::node(const std::string& node_id,
                                          const crypto::PublicKey& key) {
  auto& slot = nodes_[node_id];
  stats_.nodes = nodes_.size();
  if (jetstream_) {
    std::optional<std::uint64_t> known;
    if (slot.ingest && !slot.stale) {
      known = slot.chain.last_at;
    }
    auto loaded = jetstream_->load(node_id, known);
    if (!loaded) {
      // Nothing is known for sure (a leader election, a timeout): the session is refused and the
      // agent comes back; this collector's state is not trusted until a load succeeds.
      slot.stale = true;
      return tl::unexpected(loaded.error());
    }
    if (!loaded->current) {
      // Another collector extended the node (or this one never had it): rebuild from the stream.
      slot.ingest = std::make_unique<NodeIngest>(node_id, std::nullopt, options_);
      for (const auto& line : loaded->replay) {
        replay_into(*slot.ingest, line);
      }
      if (slot.ingest->have_seq() == 0 && loaded->state.seq != 0) {
        slot.ingest->resume(loaded->state.seq, loaded->state.digest);
      }
      slot.chain = loaded->state;
      slot.stale = false;
      ++slot.generation;
    }
  }
  if (!slot.ingest) {
    slot.ingest = std::make_unique<NodeIngest>(node_id, key, options_);
  } else {
    slot.ingest->set_key(key);
  }
  return slot.ingest.get();
}

void Store::commit(NodeIngest& node, std::span<const protocol::Frame> frames, Done done) {
  if (!jetstream_) {
    lines_.clear();
    IngestResult r = node.ingest(frames, lines_);
    if (!lines_.empty()) {
      if (auto a = sink_->append(lines_); !a) {
        done(tl::unexpected(a.error()));
        return;
      }
      if (auto s = sink_->sync(); !s) {
        done(tl::unexpected(s.error()));
        return;
      }
    }
    done(r);
    return;
  }
  Slot& slot = nodes_[node.node_id()];
  if (slot.busy || slot.stale) {
    // A second connection of the node while the first one's batch is in flight.
    done(platform::fail(std::errc::resource_unavailable_try_again,
                        "node " + node.node_id() + " has a batch in flight"));
    return;
  }
  auto text = std::make_shared<std::string>();
  std::vector<RecordInfo> records;
  IngestResult r = node.ingest(frames, *text, &records);
  if (records.empty()) {
    done(r);
    return;
  }
  ChainState after = slot.chain;
  after.seq = node.have_seq();
  after.digest = node.have_digest();
  slot.busy = true;
  const std::string id = node.node_id();
  jetstream_->write(id, node.region(), node.site(), text, records, slot.chain, after,
                    [this, id, r, text, generation = slot.generation,
                     done = std::move(done)](platform::Result<ChainState> s) {
                      Slot& sl = nodes_[id];
                      sl.busy = false;
                      if (!s) {
                        sl.stale = true;  // memory may be ahead of the stream: reload on reconnect
                        done(tl::unexpected(s.error()));
                        return;
                      }
                      if (sl.generation != generation) {
                        // A load replaced the state meanwhile: its stream position may be behind
                        // these records. Stored all the same; the node is read again next time.
                        sl.stale = true;
                      } else {
                        sl.chain = *s;
                      }
                      done(r);
                    });
}

}  // namespace gridnode::collector
