// Writes the fuzzers' seed corpora from real reports: the agent's own drivers sample the fixture
// trees, its ReportBuilder encodes them and a fresh node key signs them, exactly as
// `gridnoded --once --report` does; plus random catalogs and extreme values for coverage.
//   gridnode_make_seeds OUT_DIR  ->  OUT_DIR/{catalog,report,report_file,signature_der,
//                                            policy_bundle,session,http_request}/*
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <asio/io_context.hpp>

#include "fuzz_common.hpp"
#include "gridnode/agent/policy_bundle.hpp"
#include "gridnode/agent/report_builder.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "gridnode/drivers/registry.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/session.hpp"

namespace {

namespace fs = std::filesystem;
using namespace gridnode;

void write(const fs::path& dir, const std::string& name, std::span<const std::uint8_t> bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

protocol::ReportHeader header(std::uint64_t seq, const crypto::Digest& prev) {
  protocol::ReportHeader h;
  h.node_id = "node-7";
  h.node_labels = {{"rack", "r12"}, {"region", "east"}, {"site", "dc1"}};
  h.boot_id = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  h.seq = seq;
  h.time_ns = 1'764'000'000'000'000'000ull + seq * 1'000'000'000ull;
  h.prev = prev;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  auto random = crypto::Random::create("seeds").value();
  auto key = crypto::PrivateKey::generate(*random).value();

  // Real reports of the fixture trees, several rounds each, as files with catalog frames.
  const fs::path fixtures = GRIDNODE_FIXTURES_DIR;
  const std::pair<const char*, const char*> trees[] = {
      {"hwmon/coretemp/sys", "procfs/basic/proc"},
      {"hwmon/nct6775/sys", "procfs/kernel_4_19/proc"},
      {"thermal/basic/sys", "procfs/kernel_3_10/proc"},
  };
  int n = 0;
  for (const auto& [sys, proc] : trees) {
    platform::Roots roots{(fixtures / sys).string(), (fixtures / proc).string()};
    asio::io_context io{1};
    auto drivers = drivers::make_drivers({roots}, {});
    if (!drivers) {
      continue;
    }
    agent::Sampler sampler(io, std::move(*drivers), {});
    agent::ReportBuilder builder(3);
    protocol::Bytes file(protocol::kReportFileMagic.begin(), protocol::kReportFileMagic.end());
    crypto::Digest prev{};
    for (std::uint64_t seq = 1; seq <= 4; ++seq) {
      sampler.run_once([&] { io.stop(); });
      io.restart();
      io.run();
      auto h = header(seq, prev);
      protocol::Bytes msg;
      if (builder.build(sampler.slots(), h, msg)) {
        protocol::append_frame(file, protocol::FrameKind::catalog, builder.catalog().bytes);
        write(out / "catalog", "fixture" + std::to_string(n) + "-" + std::to_string(seq),
              builder.catalog().bytes);
      }
      prev = crypto::sha256(std::span<const std::uint8_t>(msg));
      auto sig = key.sign(prev, *random).value();
      write(out / "signature_der", "fixture" + std::to_string(n) + "-" + std::to_string(seq),
            crypto::signature_to_der(sig).value());
      msg.insert(msg.end(), sig.begin(), sig.end());
      protocol::append_frame(file, protocol::FrameKind::report, msg);
    }
    write(out / "report_file", "fixture" + std::to_string(n), file);
    ++n;
  }

  // Messages against the fuzzers' fixed catalog: keyframes and deltas, extremes, events.
  std::mt19937_64 rng(7);
  const auto& catalog = fuzz::fixed_catalog();
  protocol::ReportEncoder encoder(2);
  std::vector<protocol::Slot> values;
  crypto::Digest prev{};
  for (std::uint64_t seq = 1; seq <= 8; ++seq) {
    testing::evolve(rng, catalog.catalog, values, seq % 3 == 0 ? 0.3 : 0.0, seq % 2 ? 0.2 : 0.0);
    auto h = header(seq, prev);
    std::vector<protocol::Event> events;
    if (seq % 4 == 1) {
      events.push_back({protocol::EventKind::driver_state, 4, "hwmon", "read error",
                        {{"from", "up"}, {"state", "down"}}});
    }
    protocol::Bytes msg;
    encoder.encode(catalog, h, events, values, msg);
    prev = crypto::sha256(std::span<const std::uint8_t>(msg));
    write(out / "report", "msg" + std::to_string(seq), msg);
  }
  write(out / "catalog", "fixed", catalog.bytes);
  for (int i = 0; i < 4; ++i) {
    auto c = protocol::EncodedCatalog::of(testing::random_catalog(rng, 1 + rng() % 6, rng() % 40));
    write(out / "catalog", "random" + std::to_string(i), c.bytes);
  }
  std::printf("seeds written to %s\n", out.c_str());
  // Policy bundles: the shipped default policy, signed, and a small one of every rule.
  {
    std::ifstream in(std::string(GRIDNODE_SOURCE_DIR) + "/packaging/policy.toml");
    std::string shipped((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string small =
        "[policy]\nversion = 2\n[[limit]]\nname = \"a\"\nmetric = \"m\"\nabove = 1\n"
        "[network]\nallow = [\"tcp:22\"]\n[accelerator]\nusers = [\"u\"]\n"
        "[integrity]\n[[integrity.watch]]\npath = \"/x\"\n";
    int n = 0;
    for (const std::string& text : {shipped, small}) {
      auto b = agent::make_bundle(text, key, *random).value();
      write(out / "policy_bundle", "bundle" + std::to_string(n++),
            std::span(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
    }
    // Session payloads, each after the byte that picks its decoder (session_fuzz.cpp).
    auto seed = [&](std::uint8_t which, const auto& message, const std::string& name) {
      protocol::Bytes payload;
      protocol::encode(message, payload);
      payload.insert(payload.begin(), which);
      write(out / "session", name, payload);
    };
    seed(0, protocol::Hello{"node-7", 12, 40}, "hello");
    seed(1, protocol::Welcome{11, crypto::sha256(std::string_view("r11")), 64}, "welcome");
    seed(2, protocol::Ack{99}, "ack");
    seed(3, protocol::Reject{7, "signature of report 8 does not verify"}, "reject");
    seed(4, protocol::PolicyPush{agent::make_bundle(small, key, *random).value()}, "policy_push");
    seed(5,
         protocol::PolicyStatus{protocol::PolicyStatus::Result::refused,
                                crypto::sha256(std::string_view("bundle")), 2,
                                crypto::sha256(std::string_view("v2")), "rollback"},
         "policy_status");
  }
  // HTTP requests (http_request_fuzz.cpp): a read-size byte, a limits byte, then the stream.
  {
    const std::pair<const char*, std::string> requests[] = {
        {"scrape", "GET /metrics HTTP/1.1\r\nHost: node-7:9100\r\nUser-Agent: Prometheus/2.42.0\r\n"
                   "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;"
                   "q=0.5,*/*;q=0.1\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-"
                   "Seconds: 10\r\nAuthorization: Basic cHJvbTpzZWNyZXQ=\r\n\r\n"},
        {"pipelined", "GET /metrics?collect[]=hwmon&collect[]=nvml HTTP/1.1\r\nHost: a\r\n\r\n"
                      "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
                      "GET /v1/capacity?region=east&min_free_gpus=2 HTTP/1.1\r\nConnection: "
                      "close\r\n\r\n"},
        {"http10", "GET /v1/nodes/node%2D7 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                   "GET / HTTP/1.0\r\n\r\n"},
        {"body", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"},
        {"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
        {"absolute", "GET http://example.com/metrics HTTP/1.1\r\n\r\n"},
        {"upgrade", "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI"},
    };
    std::uint8_t n = 0;
    for (const auto& [name, text] : requests) {
      for (const std::uint8_t limits : {std::uint8_t{0}, std::uint8_t{1}}) {
        std::string bytes = text;
        bytes.insert(bytes.begin(), {static_cast<char>(n * 7 + 3), static_cast<char>(limits)});
        write(out / "http_request", std::string(name) + (limits ? "-small" : ""),
              std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
      }
      ++n;
    }
  }
  return 0;
}
