// The agent signs one report a second; a collector verifies thousands a second. These time the
// per-report work: hashing a report-sized message (600 bytes), signing its digest
// (deterministic ECDSA P-256 with blinding), verifying it, and converting the signature to the
// DER form stock tools read. Keys are parsed once, as the agent and collector hold them.
// BM_TlsHandshake and BM_TlsThroughput run both ends of a mutual-TLS connection over loopback
// on one thread, so their figures are the client's plus the server's CPU; the certificates are
// made once with the openssl command.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <array>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/crypto/tls.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/collector/verifier.hpp"

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

// The collector's verification (collector/include/gridnode/collector/verifier.hpp): the same key and signature through
// OpenSSL's libcrypto. Compare with BM_Verify of the same run.
void BM_VerifyOpenSsl(benchmark::State& state) {
  Fixture& f = fixture();
  const collector::ReportVerifier verifier(f.key->public_key());
  if (!verifier.uses_openssl()) {
    state.SkipWithError("OpenSSL did not take the key");
    return;
  }
  for (auto _ : state) {
    if (!verifier.verify(f.digest, f.signature)) {
      state.SkipWithError("verify failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyOpenSsl);

void BM_SignatureToDer(benchmark::State& state) {
  const Signature& sig = fixture().signature;
  for (auto _ : state) {
    auto der = signature_to_der(sig);
    benchmark::DoNotOptimize(der->data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignatureToDer);

// --- TLS --------------------------------------------------------------------------------------

// A CA, a server certificate for "localhost" and a node certificate, made with openssl in a
// temporary directory, and the two contexts built from them.
struct TlsFixture {
  TlsFixture() {
    char tmpl[] = "/tmp/gn-tlsbench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::abort();
    }
    dir = tmpl;
    const std::string script =
        "cd '" + dir +
        "' && "
        "printf '[req]\\ndistinguished_name=dn\\nx509_extensions=ca\\n[dn]\\n"
        "[ca]\\nbasicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n' > req.cnf && "
        "printf 'subjectAltName=DNS:localhost\\n' > san.ext && "
        "openssl ecparam -name prime256v1 -genkey -noout -out ca.key && "
        "openssl req -config req.cnf -x509 -new -key ca.key -subj /CN=bench-CA -days 30 "
        "-sha256 -out ca.crt && "
        "for n in server node-1; do "
        "openssl ecparam -name prime256v1 -genkey -noout -out $n.key && "
        "openssl req -config req.cnf -new -key $n.key -subj /CN=$n -out $n.csr && "
        "openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 "
        "-sha256 -extfile san.ext -out $n.crt || exit 1; done >/dev/null 2>&1";
    if (std::system(script.c_str()) != 0) {
      std::abort();
    }
    server = make(true, "server");
    client = make(false, "node-1");
  }
  ~TlsFixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::shared_ptr<TlsContext> make(bool is_server, const std::string& name) {
    std::string key_pem;
    if (!platform::read_file(dir + "/" + name + ".key", key_pem, 1 << 16)) {
      std::abort();
    }
    auto ctx = TlsContext::create(TlsOptions{
        .server = is_server,
        .ca = Certificate::load_file(dir + "/ca.crt").value(),
        .cert = Certificate::load_file(dir + "/" + name + ".crt").value(),
        .key = PrivateKey::from_pem(key_pem).value(),
        .server_name = is_server ? "" : "localhost",
    });
    if (!ctx) {
      std::abort();
    }
    return *ctx;
  }
  std::string dir;
  std::shared_ptr<TlsContext> server, client;
};

TlsFixture& tls_fixture() {
  static TlsFixture f;
  return f;
}

// A connected loopback pair (the kernel completes a loopback connect to a listening socket
// at once, so the blocking calls here do not wait).
struct LoopbackPair {
  explicit LoopbackPair(asio::io_context& io, asio::ip::tcp::acceptor& acceptor)
      : server(io), client(io) {
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    server.set_option(asio::ip::tcp::no_delay(true));
    client.set_option(asio::ip::tcp::no_delay(true));
  }
  asio::ip::tcp::socket server, client;
};

// Both handshakes done on `io`; false if either failed.
bool handshake(asio::io_context& io, TlsStream& server, TlsStream& client) {
  int done = 0;
  bool ok = true;
  auto on = [&](platform::Result<void> r) {
    ok = ok && r.has_value();
    ++done;
  };
  server.async_handshake(on);
  client.async_handshake(on);
  io.restart();
  while (done < 2 && io.run_one() > 0) {
  }
  return ok && done == 2;
}

void BM_TlsHandshake(benchmark::State& state) {
  TlsFixture& f = tls_fixture();
  asio::io_context io{1};
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  for (auto _ : state) {
    LoopbackPair pair(io, acceptor);
    TlsStream server(f.server, std::move(pair.server));
    TlsStream client(f.client, std::move(pair.client));
    if (!handshake(io, server, client)) {
      state.SkipWithError("handshake failed");
      break;
    }
    server.close();
    client.close();
    io.restart();
    io.poll();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TlsHandshake)->Unit(benchmark::kMillisecond);

void BM_TlsThroughput(benchmark::State& state) {
  TlsFixture& f = tls_fixture();
  asio::io_context io{1};
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  LoopbackPair pair(io, acceptor);
  TlsStream server(f.server, std::move(pair.server));
  TlsStream client(f.client, std::move(pair.client));
  if (!handshake(io, server, client)) {
    state.SkipWithError("handshake failed");
    return;
  }
  constexpr std::size_t kWrite = 16 * 1024;
  const std::vector<std::uint8_t> chunk(kWrite, 0x5a);
  std::vector<std::uint8_t> sink(64 * 1024);
  std::size_t received = 0;
  bool failed = false;
  // Each iteration: one 16 KiB write, encrypted, sent, received and decrypted.
  std::function<void()> read_next = [&] {
    server.async_read_some(asio::buffer(sink), [&](platform::Result<std::size_t> n) {
      if (!n) {
        return;
      }
      received += *n;
      read_next();
    });
  };
  read_next();
  io.restart();
  std::size_t expected = 0;
  for (auto _ : state) {
    expected += kWrite;
    bool written = false;
    client.async_write(asio::buffer(chunk), [&](platform::Result<void> r) {
      failed = failed || !r;
      written = true;
    });
    while ((!written || received < expected) && io.run_one() > 0) {
    }
    if (failed || received < expected) {
      state.SkipWithError("write failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kWrite));
  client.close();
  server.close();
  io.restart();
  io.poll();
}
BENCHMARK(BM_TlsThroughput);

}  // namespace
}  // namespace gridnode::crypto
