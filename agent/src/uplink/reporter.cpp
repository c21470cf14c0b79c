#include "gridnode/agent/reporter.hpp"

#include "gridnode/platform/log.hpp"

namespace gridnode::agent {
platform::Result<std::unique_ptr<Reporter>> Reporter::create(const Config& config,
                                                             Identity identity, ChainPoint chain) {
  if (!identity.key) {
    return platform::fail(std::errc::no_such_file_or_directory, "no node key");
  }
  auto boot = read_boot_id(config.roots);
  if (!boot) {
    return tl::unexpected(boot.error());
  }
  auto random = crypto::Random::create("gridnoded reports");
  if (!random) {
    return tl::unexpected(random.error());
  }
  return std::unique_ptr<Reporter>(
      new Reporter(config, std::move(identity), chain, std::move(*random), *boot));
}

Reporter::Reporter(const Config& config, Identity identity, ChainPoint chain,
                   std::unique_ptr<crypto::Random> random, protocol::BootId boot)
    : identity_(std::move(identity)),
      labels_(config.node_labels),
      boot_(boot),
      random_(std::move(random)),
      builder_(config.keyframe_interval),
      chain_(chain) {
  header_.node_id = identity_.node_id;
  header_.node_labels = labels_;
  header_.boot_id = boot_;
}

void Reporter::on_round(const Sampler& sampler) {
  header_.seq = chain_.seq + 1;
  // The sampling time: when the round started, not when its last sweep came back.
  header_.time_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          sampler.round_started().time_since_epoch())
          .count());
  header_.prev = chain_.digest;
  bool catalog_changed = builder_.build(sampler.slots(), header_, envelope_);
  auto t0 = std::chrono::steady_clock::now();
  auto digest = protocol::sign_envelope(envelope_, *identity_.key, *random_);
  last_sign_ = std::chrono::steady_clock::now() - t0;
  if (!digest) {
    // The chain does not move: the next round reuses this sequence number.
    ++failures_;
    if (last_error_ != digest.error().message()) {
      last_error_ = digest.error().message();
      platform::log(platform::Level::err, "report",
                    platform::LogLine("cannot sign").kv("err", last_error_));
    }
    builder_.force_keyframe();
    return;
  }
  chain_ = {header_.seq, *digest};
  ++reports_;
  last_bytes_ = envelope_.size();
  last_keyframe_ = header_.keyframe;
  if (sink_) {
    std::span<const std::uint8_t> catalog;
    if (catalog_changed) {
      catalog = builder_.catalog().bytes;
    }
    sink_->on_report(catalog, envelope_, header_);
  }
  // Only now the chain point: a kill -9 between the two leaves the spool one report ahead of the
  // chain file, and start-up resumes after the spool's last report. The other order would
  // resume after a report that was never spooled, and lose it.
  auto recorded = chain_file_ ? chain_file_->record(chain_) : platform::Result<void>{};
  if (!recorded) {
    if (last_error_ != recorded.error().message()) {
      last_error_ = recorded.error().message();
      platform::log(platform::Level::err, "report",
                    platform::LogLine("chain not recorded").kv("err", last_error_));
    }
  } else {
    last_error_.clear();
  }
}

platform::Result<protocol::Bytes> Reporter::sign_gap(const protocol::GapRecord& gap) {
  protocol::Bytes out;
  protocol::encode_gap(gap, out);
  if (auto d = protocol::sign_envelope(out, *identity_.key, *random_); !d) {
    return tl::unexpected(d.error());
  }
  return out;
}

platform::Result<void> Reporter::persist_chain(const std::string& path) {
  auto file = std::make_unique<ChainFile>();
  if (auto r = file->open(path); !r) {
    return r;
  }
  // At once, not with the first report: an empty file (created here, killed before that report)
  // would not read as a chain point at the next start.
  if (auto r = file->record(chain_); !r) {
    return r;
  }
  chain_file_ = std::move(file);
  return {};
}

void Reporter::sync_chain() {
  if (chain_file_) {
    if (auto r = chain_file_->sync(); !r) {
      platform::log(platform::Level::warning, "report",
                    platform::LogLine("chain not synced").kv("err", r.error().message()));
    }
  }
}

nlohmann::json Reporter::status_json() const {
  nlohmann::json j = {{"node", identity_.node_id},
                      {"seq", chain_.seq},
                      {"reports_total", reports_},
                      {"failures_total", failures_},
                      {"last_bytes", last_bytes_},
                      {"last_samples", builder_.samples()},
                      {"last_keyframe", last_keyframe_},
                      {"last_sign_seconds",
                       std::chrono::duration<double>(last_sign_).count()},
                      {"catalog_bytes", builder_.catalog().bytes.size()},
                      {"catalog", crypto::to_hex(builder_.catalog().digest)}};
  if (builder_.samples() > 0) {
    j["last_bytes_per_sample"] =
        static_cast<double>(last_bytes_) / static_cast<double>(builder_.samples());
  }
  if (!last_error_.empty()) {
    j["error"] = last_error_;
  }
  return j;
}

}  // namespace gridnode::agent
