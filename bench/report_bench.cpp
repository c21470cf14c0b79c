// The report's cost and size on this host's own readings.
//
// At start the bench samples THIS host with the agent's real drivers (/sys, /proc) for
// GRIDNODE_BENCH_ROUNDS rounds (default 6) one GRIDNODE_BENCH_INTERVAL apart (default 1 s, the
// agent's default interval), through the same ReportBuilder as gridnoded. Then:
//   BM_EncodeReport   encode one steady-state (delta) report
//   BM_SignReport     SHA-256 + ECDSA P-256 signature of that message
//   BM_VerifyReport   the receiver's signature check
//   BM_DecodeReport   the receiver's decode (header, events, values) against its predecessor
//   BM_Size           bytes per sample, as counters, of: our signed report on the wire (framed,
//                     steady state, keyframe every 60 reports amortised), Prometheus text and
//                     gzip'd Prometheus text (zlib level 6, node_exporter's gzip) of the same
//                     snapshot, and the keyframe alone.
#include <benchmark/benchmark.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <asio/io_context.hpp>

#include "gridnode/agent/exposition.hpp"
#include "gridnode/agent/report_builder.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "gridnode/drivers/registry.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode {
namespace {

constexpr std::uint32_t kKeyframeInterval = 60;

double env_or(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtod(v, nullptr) : fallback;
}

protocol::ReportHeader header_for(std::uint64_t seq, const crypto::Digest& prev) {
  protocol::ReportHeader h;
  h.node_id = "node-0001.dc1.east";
  h.node_labels = {{"rack", "r12"}, {"region", "east"}, {"site", "dc1"}};
  h.boot_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  h.seq = seq;
  h.time_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  h.prev = prev;
  return h;
}

// Everything measured comes from one recording of this host.
struct Recording {
  protocol::EncodedCatalog catalog;
  std::vector<std::vector<protocol::Slot>> rounds;
  std::string prometheus;  // of the last round
  std::size_t samples = 0;

  static const Recording& get() {
    static const Recording r = record();
    return r;
  }

  static Recording record() {
    Recording rec;
    asio::io_context io{1};
    auto drivers = drivers::make_drivers({platform::Roots{}}, {});
    if (!drivers) {
      std::abort();
    }
    agent::Sampler sampler(io, std::move(*drivers), {});
    agent::ReportBuilder builder(kKeyframeInterval);
    const int rounds = static_cast<int>(env_or("GRIDNODE_BENCH_ROUNDS", 6));
    const auto interval = std::chrono::duration<double>(env_or("GRIDNODE_BENCH_INTERVAL", 1.0));
    for (int i = 0; i < rounds; ++i) {
      if (i > 0) {
        std::this_thread::sleep_for(interval);
      }
      sampler.run_once([&] { io.stop(); });
      io.restart();
      io.run();
      auto h = header_for(i + 1, {});
      protocol::Bytes msg;
      builder.build(sampler.slots(), h, msg);
      rec.rounds.push_back(builder.values());
    }
    rec.catalog = builder.catalog();
    rec.samples = builder.samples();
    agent::Exposition exposition;
    exposition.render_prometheus(sampler, rec.prometheus);
    return rec;
  }
};

// Encodes the recording as a node would: report 1 a keyframe, the rest deltas.
struct Encoded {
  std::vector<protocol::Bytes> messages;  // unsigned
  std::vector<crypto::Digest> digests;
};
Encoded encode_all(const Recording& rec) {
  Encoded e;
  protocol::ReportEncoder enc(kKeyframeInterval);
  crypto::Digest prev{};
  for (std::size_t i = 0; i < rec.rounds.size(); ++i) {
    auto h = header_for(i + 1, prev);
    protocol::Bytes msg;
    enc.encode(rec.catalog, h, {}, rec.rounds[i], msg);
    prev = crypto::sha256(std::span<const std::uint8_t>(msg));
    e.messages.push_back(std::move(msg));
    e.digests.push_back(prev);
  }
  return e;
}

void BM_EncodeReport(benchmark::State& state) {
  const auto& rec = Recording::get();
  protocol::ReportEncoder enc(1u << 30);  // steady state: deltas only
  protocol::Bytes msg;
  auto h = header_for(1, {});
  enc.encode(rec.catalog, h, {}, rec.rounds[0], msg);
  std::size_t i = 1;
  for (auto _ : state) {
    h.seq++;
    enc.encode(rec.catalog, h, {}, rec.rounds[i], msg);
    benchmark::DoNotOptimize(msg.data());
    i = i + 1 < rec.rounds.size() ? i + 1 : 1;
  }
  state.counters["samples"] = static_cast<double>(rec.samples);
}
BENCHMARK(BM_EncodeReport);

void BM_SignReport(benchmark::State& state) {
  const auto& rec = Recording::get();
  auto enc = encode_all(rec);
  auto random = crypto::Random::create("bench").value();
  auto key = crypto::PrivateKey::generate(*random).value();
  protocol::Bytes env;
  for (auto _ : state) {
    env = enc.messages.back();
    auto d = protocol::sign_envelope(env, key, *random);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_SignReport)->Unit(benchmark::kMicrosecond);

void BM_VerifyReport(benchmark::State& state) {
  const auto& rec = Recording::get();
  auto enc = encode_all(rec);
  auto random = crypto::Random::create("bench").value();
  auto key = crypto::PrivateKey::generate(*random).value();
  auto pub = key.public_key();
  protocol::Bytes env = enc.messages.back();
  (void)protocol::sign_envelope(env, key, *random).value();
  auto e = protocol::split_envelope(env).value();
  for (auto _ : state) {
    bool ok = protocol::verify_envelope(e, pub);
    if (!ok) {
      state.SkipWithError("signature did not verify");
    }
  }
}
BENCHMARK(BM_VerifyReport)->Unit(benchmark::kMicrosecond);

void BM_DecodeReport(benchmark::State& state) {
  const auto& rec = Recording::get();
  auto enc = encode_all(rec);
  // Decode report 2 after report 1, again and again: reset to the state after report 1 by
  // decoding report 1 (a keyframe) each time, outside the timing.
  protocol::ReportDecoder dec;
  for (auto _ : state) {
    state.PauseTiming();
    (void)dec.decode(enc.messages[0], rec.catalog).value();
    state.ResumeTiming();
    auto r = dec.decode(enc.messages[1], rec.catalog);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_DecodeReport);

std::size_t gzip_size(const std::string& text) {
  z_stream z{};
  // windowBits 15 + 16: a gzip stream, as HTTP Content-Encoding: gzip carries it.
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    std::abort();
  }
  std::string out(deflateBound(&z, text.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  std::size_t n = z.total_out;
  deflateEnd(&z);
  return n;
}

void BM_Size(benchmark::State& state) {
  const auto& rec = Recording::get();
  auto enc = encode_all(rec);
  // On the wire: frame header + message + 64-byte signature.
  auto wire = [](const protocol::Bytes& msg) {
    protocol::Bytes framed;
    protocol::Bytes env = msg;
    env.resize(env.size() + protocol::kSignatureSize);
    protocol::append_frame(framed, protocol::FrameKind::report, env);
    return static_cast<double>(framed.size());
  };
  double keyframe = wire(enc.messages[0]);
  double deltas = 0;
  for (std::size_t i = 1; i < enc.messages.size(); ++i) {
    deltas += wire(enc.messages[i]);
  }
  deltas /= static_cast<double>(enc.messages.size() - 1);
  const double steady = (keyframe + deltas * (kKeyframeInterval - 1)) / kKeyframeInterval;
  const double n = static_cast<double>(rec.samples);
  for (auto _ : state) {
    benchmark::DoNotOptimize(steady);
  }
  state.counters["samples"] = n;
  state.counters["wire_B_per_sample"] = steady / n;
  state.counters["delta_B_per_sample"] = deltas / n;
  state.counters["keyframe_B_per_sample"] = keyframe / n;
  state.counters["prom_text_B_per_sample"] = static_cast<double>(rec.prometheus.size()) / n;
  state.counters["prom_gzip_B_per_sample"] = static_cast<double>(gzip_size(rec.prometheus)) / n;
  state.counters["catalog_B"] = static_cast<double>(rec.catalog.bytes.size());
}
BENCHMARK(BM_Size)->Iterations(1);

}  // namespace
}  // namespace gridnode
