#include "store.hpp"

#include "gridnode/crypto/base64.hpp"

namespace gridnode::collector {

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

void Store::replay(std::string_view line) {
  if (!read_record_keys(line, keys_)) {
    ++stats_.lines_unreadable;
    return;
  }
  protocol::FrameKind kind = keys_.type == "catalog"  ? protocol::FrameKind::catalog
                             : keys_.type == "report" ? protocol::FrameKind::report
                                                      : protocol::FrameKind::gap;
  auto raw = crypto::from_base64(keys_.raw);
  if (!raw) {
    ++stats_.lines_unreadable;
    return;
  }
  auto& slot = nodes_[keys_.node];
  if (!slot) {
    // The key arrives with the node's next connection (its certificate); restoring needs none.
    slot = std::make_unique<NodeIngest>(keys_.node, std::nullopt, options_);
  }
  if (auto r = slot->restore(kind, *raw); !r) {
    ++stats_.lines_unreadable;
    return;
  }
  ++stats_.records_replayed;
  stats_.nodes = nodes_.size();
}

NodeIngest& Store::node(const std::string& node_id, const crypto::PublicKey& key) {
  auto& slot = nodes_[node_id];
  if (!slot) {
    slot = std::make_unique<NodeIngest>(node_id, key, options_);
    stats_.nodes = nodes_.size();
  } else {
    slot->set_key(key);
  }
  return *slot;
}

platform::Result<IngestResult> Store::commit(NodeIngest& node,
                                             std::span<const protocol::Frame> frames) {
  lines_.clear();
  IngestResult r = node.ingest(frames, lines_);
  if (!lines_.empty()) {
    if (auto a = sink_->append(lines_); !a) {
      return tl::unexpected(a.error());
    }
    if (auto s = sink_->sync(); !s) {
      return tl::unexpected(s.error());
    }
  }
  return r;
}

}  // namespace gridnode::collector
