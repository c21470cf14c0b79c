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

platform::Result<NodeIngest*> Store::node(const std::string& node_id,
                                          const crypto::PublicKey& key) {
  auto& slot = nodes_[node_id];
  stats_.nodes = nodes_.size();
  if (slot.busy) {
    // A new connection of the node while the last one's batch is being stored: its welcome
    // would tell the agent the node's position before it is durable.
    return platform::fail(std::errc::resource_unavailable_try_again,
                          "node " + node_id + " has a batch in flight");
  }
  auto loaded = sink_->load(node_id, slot.ingest && !slot.stale);
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
  if (slot.busy || slot.stale) {
    // A second connection of the node while the first one's batch is in flight, or a node whose
    // state the sink may no longer agree with.
    done(platform::fail(std::errc::resource_unavailable_try_again,
                        "node " + node.node_id() + " has a batch in flight"));
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
