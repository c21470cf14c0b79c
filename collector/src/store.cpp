#include "gridnode/collector/store.hpp"

namespace gridnode::collector {

platform::Result<std::unique_ptr<Store>> Store::open(std::unique_ptr<Sink> sink,
                                                     IngestOptions options) {
  std::unique_ptr<Store> store(new Store(std::move(sink), options));
  auto recovered =
      store->sink_->recover([&store](const StoredRecord& r) { store->replay(r); });
  if (!recovered) {
    return tl::unexpected(recovered.error());
  }
  store->stats_.lines_unreadable += recovered->unreadable;
  store->stats_.bytes_cut = recovered->bytes_cut;
  return store;
}

void Store::replay(const StoredRecord& record) {
  auto& slot = nodes_[record.node];
  if (!slot.ingest) {
    // The key arrives with the node's next connection (its certificate); restoring needs none.
    slot.ingest = std::make_unique<NodeIngest>(record.node, std::nullopt, options_);
  }
  if (auto r = slot.ingest->restore(record.kind, record.raw); !r) {
    ++stats_.lines_unreadable;
    return;
  }
  ++stats_.records_replayed;
  stats_.nodes = nodes_.size();
}

std::optional<platform::Error> Store::cannot_load(const Slot& slot,
                                                  const std::string& node_id) const {
  if (slot.busy) {
    // A new connection of the node while the last one's batch is being stored: its welcome
    // would tell the agent the node's position before it is durable.
    return platform::Error{std::make_error_code(std::errc::resource_unavailable_try_again),
                           "node " + node_id + " has a batch in flight"};
  }
  if (slot.loading) {
    return platform::Error{std::make_error_code(std::errc::resource_unavailable_try_again),
                           "node " + node_id + " is being loaded for another connection"};
  }
  return std::nullopt;
}

platform::Result<NodeIngest*> Store::node(const std::string& node_id,
                                          const crypto::PublicKey& key) {
  auto& slot = nodes_[node_id];
  stats_.nodes = nodes_.size();
  if (auto why = cannot_load(slot, node_id)) {
    return tl::unexpected(std::move(*why));
  }
  return apply(slot, node_id, key, sink_->load(node_id, slot.ingest && !slot.stale));
}

// The load off the loop, and the race it must not open (the grid test's twins check, with
// d25f3de: node-5's chain broken at report 8). A load reads the stream at one moment and its
// result is adopted later; a batch of the node that lands in between (its old connection still
// streaming on this collector) is in the stream but not in what was read:
//   1. session B (the new connection) starts the load: this collector knows the stream's end, L5;
//   2. session A, still attached, commits report 6 (lands at L6, acknowledged);
//   3. the load reads: the end is L6, not L5, so it replays the node: memory and position at 6;
//   4. A commits report 7: A's memory goes to 7, published fenced on L6, lands at L7;
//   5. the load's result is adopted: memory and position back to 6 / L6;
//   6. report 7's acknowledgement is handled: the position moves to L7, memory stays at 6;
//   7. B's agent (a twin: one identity, its own report 7) is welcomed at 6; its 7 verifies
//      against memory at 6 and is published fenced on L7, which the stream has: accepted. Two
//      report 7s, and the twin's 8 links to the wrong one.
// Memory and fence disagreed from step 6 on. Two rules close it: no batch of the node is
// committed while it loads (steps 2 and 4 are refused: A's agent reconnects; the new session
// wins anyway), no load starts while a batch is in flight; and the sink adopts a read on the
// loop, where a batch acknowledged after it no longer writes its position over it (JetStreamSink,
// Position::generation). ALoadAndABatchOfTheNodeDoNotCross (jetstream_test) plays steps 1 to 7.
void Store::node_async(const std::string& node_id, crypto::PublicKey key, NodeDone done) {
  auto& slot = nodes_[node_id];
  stats_.nodes = nodes_.size();
  if (auto why = cannot_load(slot, node_id)) {
    done(tl::unexpected(std::move(*why)));
    return;
  }
  slot.loading = true;
  // The sink calls back on the loop while the store (its owner) lives: `this` is safe.
  sink_->load_async(node_id, slot.ingest && !slot.stale,
                    [this, node_id, key = std::move(key),
                     done = std::move(done)](platform::Result<Sink::Loaded> loaded) mutable {
                      Slot& s = nodes_[node_id];
                      s.loading = false;
                      done(apply(s, node_id, key, std::move(loaded)));
                    });
}

platform::Result<NodeIngest*> Store::apply(Slot& slot, const std::string& node_id,
                                           const crypto::PublicKey& key,
                                           platform::Result<Sink::Loaded> loaded) {
  if (!loaded) {
    // This collector's state is not trusted until a load succeeds.
    slot.stale = true;
    return tl::unexpected(loaded.error());
  }
  if (!loaded->current) {
    // Every record up to the sink's end: the node resumes there (the agent is told so in its
    // welcome), also after records a collector stored but died before acknowledging.
    slot.ingest = std::make_unique<NodeIngest>(node_id, std::nullopt, options_);
    for (const StoredRecord& r : loaded->replay) {
      if (r.node == node_id && slot.ingest->restore(r.kind, r.raw)) {
        ++stats_.records_replayed;
      } else {
        ++stats_.lines_unreadable;
      }
    }
    stats_.lines_unreadable += loaded->unreadable;
    if (slot.ingest->have_seq() == 0 && loaded->seq != 0) {
      slot.ingest->resume(loaded->seq, loaded->digest);
    }
    slot.stale = false;
  }
  if (!slot.ingest) {
    slot.ingest = std::make_unique<NodeIngest>(node_id, key, options_);
  } else {
    slot.ingest->set_key(key);
  }
  return slot.ingest.get();
}

void Store::commit(NodeIngest& node, std::span<const protocol::Frame> frames, Done done) {
  Slot& slot = nodes_[node.node_id()];
  if (slot.busy || slot.stale || slot.loading) {
    // A second connection of the node while the first one's batch is in flight, a node whose
    // state the sink may no longer agree with, or one being loaded for a new connection (whose
    // read this batch's records must not land behind: node_async).
    done(platform::fail(std::errc::resource_unavailable_try_again,
                        "node " + node.node_id() +
                            (slot.loading ? " is being loaded for another connection"
                                          : " has a batch in flight")));
    return;
  }
  lines_.clear();
  records_.clear();
  IngestResult r = node.ingest(frames, lines_, sink_->wants_records() ? &records_ : nullptr);
  if (lines_.empty()) {
    done(r);
    return;
  }
  slot.busy = true;
  const SinkBatch batch{node.node_id(), node.region(), node.site(), node.have_seq(),
                        node.have_digest(), lines_, records_};
  sink_->write(batch, [this, id = node.node_id(), r = std::move(r),
                       done = std::move(done)](platform::Result<void> s) mutable {
    Slot& sl = nodes_[id];
    sl.busy = false;
    if (!s) {
      sl.stale = true;  // memory may be ahead of the sink: reload on reconnect
      done(tl::unexpected(s.error()));
      return;
    }
    done(std::move(r));
  });
}

}  // namespace gridnode::collector
