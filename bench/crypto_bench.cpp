// The agent signs one report a second; a collector verifies thousands a second. These time the
// per-report work: hashing a report-sized message (600 bytes), signing its digest
// (deterministic ECDSA P-256 with blinding), verifying it, and converting the signature to the
// DER form stock tools read. Keys are parsed once, as the agent and collector hold them.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "gridnode/crypto/crypto.hpp"

namespace gridnode::crypto {
namespace {

struct Fixture {
  Fixture() {
    auto r = Random::create("crypto_bench");
    if (!r) {
      std::abort();
    }
    random = std::move(*r);
    auto k = PrivateKey::generate(*random);
    if (!k) {
      std::abort();
    }
    key.emplace(std::move(*k));
    message.resize(600);
    for (std::size_t i = 0; i < message.size(); ++i) {
      message[i] = static_cast<std::uint8_t>(i * 131 + 7);
    }
    digest = sha256(message);
    signature = key->sign(digest, *random).value();
  }
  std::unique_ptr<Random> random;
  std::optional<PrivateKey> key;
  std::vector<std::uint8_t> message;
  Digest digest{};
  Signature signature{};
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_Sha256_600B(benchmark::State& state) {
  const auto& msg = fixture().message;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sha256(msg));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
}
BENCHMARK(BM_Sha256_600B);

void BM_Sign(benchmark::State& state) {
  Fixture& f = fixture();
  Digest d = f.digest;
  for (auto _ : state) {
    d[0]++;  // a different report each time, as in the agent
    auto sig = f.key->sign(d, *f.random);
    if (!sig) {
      state.SkipWithError("sign failed");
      break;
    }
    benchmark::DoNotOptimize(*sig);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Sign);

void BM_Verify(benchmark::State& state) {
  Fixture& f = fixture();
  const PublicKey pub = f.key->public_key();
  for (auto _ : state) {
    if (!pub.verify(f.digest, f.signature)) {
      state.SkipWithError("verify failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Verify);

void BM_SignatureToDer(benchmark::State& state) {
  const Signature& sig = fixture().signature;
  for (auto _ : state) {
    auto der = signature_to_der(sig);
    benchmark::DoNotOptimize(der->data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignatureToDer);

}  // namespace
}  // namespace gridnode::crypto
