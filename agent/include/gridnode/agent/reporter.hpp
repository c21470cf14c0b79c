#pragma once

#include <chrono>
#include <memory>
#include <span>

#include <nlohmann/json.hpp>

#include "gridnode/agent/config.hpp"
#include "gridnode/agent/identity.hpp"
#include "gridnode/agent/report_builder.hpp"
#include "gridnode/agent/report_sink.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "gridnode/protocol/gap.hpp"

namespace gridnode::agent {

// After every sampling round: builds the report, signs it with the node key and hands it to
// its ReportSink (the spool's writer in the daemon). It is also the spool's GapSigner: gap
// records are signed with the same key. Lives on the loop thread; a steady-state round
// allocates nothing but what mbedTLS needs to sign.
class Reporter final : public GapSigner {
 public:
  // Starts the chain where `chain` left it: the first report is chain.seq + 1.
  [[nodiscard]] static platform::Result<std::unique_ptr<Reporter>> create(const Config& config,
                                                                         Identity identity,
                                                                         ChainPoint chain);

  // Where each report goes from now on (not owned; null: nowhere).
  void set_sink(ReportSink* sink) { sink_ = sink; }
  // Records the chain point in `path` after every report (see ChainFile).
  [[nodiscard]] platform::Result<void> persist_chain(const std::string& path);
  // fsyncs the chain file (clean stop).
  void sync_chain();
  // Builds and signs this round's report.
  void on_round(const Sampler& sampler);

  ChainPoint chain() const { return chain_; }
  // The next report carries absolute values (its predecessor may be lost).
  void force_keyframe() { builder_.force_keyframe(); }
  // Events for the next report (policy violations and actions).
  void add_events(std::vector<protocol::Event> events) { builder_.add_events(std::move(events)); }
  // A gap record signed with the node key (for the spool).
  [[nodiscard]] platform::Result<protocol::Bytes> sign_gap(
      const protocol::GapRecord& gap) override;
  const std::string& node_id() const { return identity_.node_id; }
  nlohmann::json status_json() const;

 private:
  Reporter(const Config& config, Identity identity, ChainPoint chain,
           std::unique_ptr<crypto::Random> random, protocol::BootId boot);

  Identity identity_;
  platform::Labels labels_;
  protocol::BootId boot_;
  std::unique_ptr<crypto::Random> random_;
  ReportBuilder builder_;
  ChainPoint chain_;
  protocol::ReportHeader header_;
  protocol::Bytes envelope_;
  ReportSink* sink_ = nullptr;
  std::unique_ptr<ChainFile> chain_file_;
  // For status.
  std::uint64_t reports_ = 0;
  std::uint64_t failures_ = 0;
  std::size_t last_bytes_ = 0;
  bool last_keyframe_ = false;
  std::chrono::nanoseconds last_sign_{0};
  std::string last_error_;
};

}  // namespace gridnode::agent
