// The collector's ingest path per core: hash links, one signature per batch (the agent's
// batches), values decoded, JSON lines rendered — everything but the sink's write and fsync.
//   BM_Ingest/<batch>          reports per second (items_per_second) with batches of <batch>
//   BM_IngestVerifyAll/<batch> the same checking every signature (--verify-all): the baseline
// A node of 300 series, steady state (deltas, keyframe every 60), as on a real host.
#include <benchmark/benchmark.h>

#include <random>

#include "ingest.hpp"
#include "report_fixtures.hpp"

namespace gridnode::collector {
namespace {

struct Stream {
  Stream() {
    random = crypto::Random::create("bench").value();
    key.emplace(crypto::PrivateKey::generate(*random).value());
    std::mt19937_64 rng(1);
    catalog = protocol::EncodedCatalog::of(testing::random_catalog(rng, 40, 300));
  }
  std::vector<protocol::Bytes> make(std::size_t n) {
    std::vector<protocol::Bytes> out;
    for (std::size_t i = 0; i < n; ++i) {
      testing::evolve(rng, catalog.catalog, values, 0.0);
      protocol::ReportHeader h;
      h.node_id = "node-0001";
      h.node_labels = {{"rack", "r1"}, {"region", "east"}, {"site", "dc1"}};
      h.seq = ++seq;
      h.time_ns = 1'764'000'000'000'000'000ull + seq * 1'000'000'000ull;
      h.prev = prev;
      protocol::Bytes msg;
      encoder.encode(catalog, h, {}, values, msg);
      prev = protocol::sign_envelope(msg, *key, *random).value();
      out.push_back(std::move(msg));
    }
    return out;
  }
  std::unique_ptr<crypto::Random> random;
  std::optional<crypto::PrivateKey> key;
  protocol::EncodedCatalog catalog;
  protocol::ReportEncoder encoder{60};
  std::mt19937_64 rng{2};
  std::vector<protocol::Slot> values;
  std::uint64_t seq = 0;
  crypto::Digest prev{};
};

void run(benchmark::State& state, bool verify_all) {
  const std::size_t batch = static_cast<std::size_t>(state.range(0));
  Stream s;
  // Pre-sign enough batches (signing is the agent's cost, not the collector's).
  const std::size_t batches = 16;
  std::vector<std::vector<protocol::Bytes>> signed_batches;
  for (std::size_t b = 0; b < batches; ++b) {
    signed_batches.push_back(s.make(batch));
  }
  std::size_t b = 0;
  std::unique_ptr<NodeIngest> in;
  std::string out;
  std::size_t reports = 0;
  for (auto _ : state) {
    if (b == 0) {
      state.PauseTiming();
      in = std::make_unique<NodeIngest>("node-0001", s.key->public_key(),
                                        IngestOptions{verify_all});
      std::vector<protocol::Frame> cat{{protocol::FrameKind::catalog, s.catalog.bytes, 0}};
      (void)in->ingest(cat, out);
      state.ResumeTiming();
    }
    std::vector<protocol::Frame> frames;
    frames.reserve(batch);
    for (const auto& p : signed_batches[b]) {
      frames.push_back({protocol::FrameKind::report, p, 0});
    }
    out.clear();
    auto r = in->ingest(frames, out);
    if (!r.rejected.empty()) {
      state.SkipWithError(r.rejected.c_str());
      break;
    }
    reports += r.reports;
    b = (b + 1) % batches;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(reports));
  state.counters["line_bytes_per_report"] =
      static_cast<double>(out.size()) / static_cast<double>(batch);
}

void BM_Ingest(benchmark::State& state) { run(state, false); }
void BM_IngestVerifyAll(benchmark::State& state) { run(state, true); }
BENCHMARK(BM_Ingest)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngestVerifyAll)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gridnode::collector
