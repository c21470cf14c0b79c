// The collector's ingest path per core: hash links, one signature per batch (the agent's
// batches), values decoded, JSON lines rendered — everything but the sink's write and fsync.
//   BM_Ingest/<batch>          reports per second (items_per_second) with batches of <batch>
//   BM_IngestVerifyAll/<batch> the same checking every signature (--verify-all): the baseline
//   BM_IngestStreamRecords/<batch> the same writing compact stream records (the JetStream
//                              sink's format) instead of JSON lines
//   BM_StoreJsonl/<batch>      the whole commit path of 16 nodes into the JSONL sink (fdatasync
//                              per batch), per CPU second of this process
//   BM_StoreJetStream/<batch>  the same into JetStream (a nats-server started here): every batch
//                              of every node in flight at once, done when JetStream acknowledged
//                              its records and the chain's compare-and-set; per CPU second of this
//                              process (the loop and the NATS client's threads, not nats-server)
//   BM_StoreJetStreamJsonLines/<batch> the same publishing the JSONL sink's lines, as collectors
//                              did before compact stream records: the baseline
//   BM_RemoteWriteBuild/<lines> remote_write: sink lines (those of BM_Ingest's node) read,
//                              built into one WriteRequest, packed and snappy-compressed per
//                              <lines>; items are samples (per core: one sender thread)
// A node of 300 series, steady state (deltas, keyframe every 60), as on a real host.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "gridnode/collector/ingest.hpp"
#include "gridnode/collector/jetstream.hpp"
#include "nats_server.hpp"
#include "report_fixtures.hpp"
#include "gridnode/collector/store.hpp"
#include "gridnode/collector/write_request.hpp"

namespace gridnode::collector {
namespace {

struct Stream {
  explicit Stream(std::string id = "node-0001") : node(std::move(id)) {
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
      h.node_id = node;
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
  std::string node;
  std::unique_ptr<crypto::Random> random;
  std::optional<crypto::PrivateKey> key;
  protocol::EncodedCatalog catalog;
  protocol::ReportEncoder encoder{60};
  std::mt19937_64 rng{2};
  std::vector<protocol::Slot> values;
  std::uint64_t seq = 0;
  crypto::Digest prev{};
};

void run(benchmark::State& state, bool verify_all, bool stream_records = false) {
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
                                        IngestOptions{.verify_all = verify_all,
                                                      .encoder = stream_records
                                                                     ? &stream_record_encoder
                                                                     : &json_lines_encoder});
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
void BM_IngestStreamRecords(benchmark::State& state) { run(state, false, true); }
// Batch 1: a steady interval, where each report pays for its own signature verification.
BENCHMARK(BM_Ingest)->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngestStreamRecords)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngestVerifyAll)->Arg(64)->Unit(benchmark::kMillisecond);

constexpr std::size_t kNodes = 16;
constexpr int kStoreIterations = 12;
// Batches of one report (a steady interval): enough of them to cross keyframes (every 60).
constexpr int kStoreIterationsOne = 150;

// Every node's batches, signed beforehand (the agents' cost), the catalog in the first.
struct Grid {
  Grid(std::size_t batch, std::int64_t iterations) {
    for (std::size_t n = 0; n < kNodes; ++n) {
      char id[16];
      std::snprintf(id, sizeof id, "node-%04zu", n + 1);
      streams.push_back(std::make_unique<Stream>(id));
      auto& per = batches.emplace_back();
      for (std::int64_t b = 0; b < iterations + 1; ++b) {
        per.push_back(streams.back()->make(batch));
      }
    }
  }
  std::vector<protocol::Frame> frames(std::size_t n, std::size_t b) const {
    std::vector<protocol::Frame> f;
    if (b == 0) {
      f.push_back({protocol::FrameKind::catalog, streams[n]->catalog.bytes, 0});
    }
    for (const auto& p : batches[n][b]) {
      f.push_back({protocol::FrameKind::report, p, 0});
    }
    return f;
  }
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<std::vector<std::vector<protocol::Bytes>>> batches;  // [node][batch][report]
};

void run_store(benchmark::State& state, bool jetstream, bool json_lines = false) {
  const std::size_t batch = static_cast<std::size_t>(state.range(0));
  Grid grid(batch, state.max_iterations);
  std::unique_ptr<testing::NatsServer> nats;
  std::string dir;
  asio::io_context io{1};
  platform::Result<std::unique_ptr<Store>> store = platform::fail(std::errc::invalid_argument, "");
  if (jetstream) {
    if (!testing::NatsServer::installed()) {
      state.SkipWithError("nats-server not installed");
      return;
    }
    nats = std::make_unique<testing::NatsServer>();
    JetStreamOptions o;
    o.servers = nats->url();
    o.max_bytes = std::int64_t{2} << 30;
    o.json_lines = json_lines;
    auto sink = JetStreamSink::open(io, o);
    store = sink ? Store::open(std::move(*sink), {})
                 : platform::Result<std::unique_ptr<Store>>(tl::unexpected(sink.error()));
  } else {
    dir = (std::filesystem::temp_directory_path() / "gn-bench-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) {
      state.SkipWithError("mkdtemp");
      return;
    }
    auto sink = JsonlSink::open(io, dir + "/sink.jsonl");
    store = sink ? Store::open(std::move(*sink), {})
                 : platform::Result<std::unique_ptr<Store>>(tl::unexpected(sink.error()));
  }
  if (!store) {
    state.SkipWithError(store.error().message().c_str());
    return;
  }
  std::vector<NodeIngest*> nodes;
  for (const auto& s : grid.streams) {
    nodes.push_back((*store)->node(s->node, s->key->public_key()).value());
  }
  std::size_t b = 0;
  std::size_t reports = 0;
  std::vector<std::vector<protocol::Frame>> frames(kNodes);
  // From handing a batch to the store to its being durable (JetStream: record PubAcks, then the
  // chain's compare-and-set acknowledged), with every node's batch in flight at once.
  std::vector<double> commit_ms;
  const auto wall0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    std::size_t done = 0;
    std::string failed;
    for (std::size_t n = 0; n < kNodes; ++n) {
      frames[n] = grid.frames(n, b);
      const auto t0 = std::chrono::steady_clock::now();
      (*store)->commit(*nodes[n], frames[n], [&, t0](platform::Result<IngestResult> r) {
        commit_ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        ++done;
        if (!r) {
          failed = r.error().message();
        } else {
          reports += r->reports;
        }
      });
    }
    while (done < kNodes) {
      io.restart();
      io.run_one_for(std::chrono::seconds(5));
    }
    if (!failed.empty()) {
      state.SkipWithError(failed.c_str());
      break;
    }
    ++b;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(reports));
  state.counters["wall_reports_per_s"] =
      static_cast<double>(reports) /
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (!commit_ms.empty()) {
    std::sort(commit_ms.begin(), commit_ms.end());
    state.counters["commit_p50_ms"] = commit_ms[commit_ms.size() / 2];
    state.counters["commit_p99_ms"] = commit_ms[(commit_ms.size() * 99) / 100];
  }
  store->reset();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}

void BM_StoreJsonl(benchmark::State& state) { run_store(state, false); }
void BM_StoreJetStream(benchmark::State& state) { run_store(state, true); }
void BM_StoreJetStreamJsonLines(benchmark::State& state) { run_store(state, true, true); }
BENCHMARK(BM_StoreJsonl)->Arg(64)->Iterations(kStoreIterations)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreJetStream)->Arg(64)->Iterations(kStoreIterations)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreJetStream)->Arg(1)->Iterations(kStoreIterationsOne)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreJsonl)->Arg(1)->Iterations(kStoreIterationsOne)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreJetStreamJsonLines)->Arg(64)->Iterations(kStoreIterations)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

// The sink's lines of `n` reports of the bench node, keyframes and deltas as they come.
std::vector<std::string> sink_lines(std::size_t n) {
  Stream s;
  NodeIngest in("node-0001", s.key->public_key(), IngestOptions{});
  std::string out;
  std::vector<protocol::Frame> cat{{protocol::FrameKind::catalog, s.catalog.bytes, 0}};
  (void)in.ingest(cat, out);
  out.clear();
  const auto reports = s.make(n);
  std::vector<protocol::Frame> frames;
  for (const auto& p : reports) {
    frames.push_back({protocol::FrameKind::report, p, 0});
  }
  (void)in.ingest(frames, out);
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.emplace_back(out, at, nl - at);
  }
  return lines;
}

void BM_RemoteWriteBuild(benchmark::State& state) {
  const auto lines = sink_lines(static_cast<std::size_t>(state.range(0)));
  WriteRequestBuilder builder;
  std::string body;
  std::size_t samples = 0, bytes = 0, line_bytes = 0;
  for (auto _ : state) {
    builder.clear();
    for (const auto& l : lines) {
      if (!builder.add_line(l)) {
        state.SkipWithError("a sink line was not read");
        return;
      }
    }
    builder.finish(body);
    samples += builder.samples();
    bytes += body.size();
  }
  for (const auto& l : lines) {
    line_bytes += l.size() + 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(samples));
  state.counters["samples_per_request"] = static_cast<double>(builder.samples());
  state.counters["body_bytes_per_sample"] =
      static_cast<double>(bytes) / static_cast<double>(std::max<std::size_t>(samples, 1));
  state.counters["sink_bytes_per_sample"] =
      static_cast<double>(line_bytes) / static_cast<double>(std::max<std::size_t>(builder.samples(), 1));
}
BENCHMARK(BM_RemoteWriteBuild)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gridnode::collector
