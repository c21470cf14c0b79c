#include "gridnode/agent/reporter.hpp"

#include <gtest/gtest.h>

#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

using gridnode::testing::FakeDriver;
using gridnode::testing::TempDir;
using namespace std::chrono_literals;

// The daemon's order of writes, which kill -9 may cut anywhere: a report must reach the sink
// (the spool) before the chain file says it exists. Start-up resumes after the newer of the two,
// so the other order could resume after a report that no spool ever held.
TEST(Reporter, ChainFileMovesOnlyAfterTheSinkHasTheReport) {
  TempDir dir;
  ASSERT_TRUE(enroll("node-r", dir.path(), false));
  Config config;
  config.state_dir = dir.path();
  config.node_id = "node-r";
  auto identity = load_identity(config, /*require_key=*/true);
  ASSERT_TRUE(identity) << identity.error().message();

  asio::io_context io{1};
  std::vector<std::unique_ptr<drivers::Driver>> ds;
  ds.push_back(std::make_unique<FakeDriver>("fake"));
  Sampler sampler(io, std::move(ds), Sampler::Options{50ms, 2000ms});

  auto reporter = Reporter::create(config, std::move(*identity), ChainPoint{});
  ASSERT_TRUE(reporter) << reporter.error().message();
  ASSERT_TRUE((*reporter)->persist_chain(chain_path(dir.path())));
  // {report seq, chain file seq}
  struct ChainWitness final : ReportSink {
    std::string path;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
    void on_report(std::span<const std::uint8_t>, std::span<const std::uint8_t>,
                   const protocol::ReportHeader& header) override {
      auto on_disk = read_chain(path);
      ASSERT_TRUE(on_disk) << on_disk.error().message();
      seen.emplace_back(header.seq, on_disk->seq);
    }
  } witness;
  witness.path = chain_path(dir.path());
  (*reporter)->set_sink(&witness);
  const auto& seen = witness.seen;

  for (int round = 0; round < 3; ++round) {
    bool done = false;
    sampler.run_once([&] { done = true; });
    io.restart();
    while (!done) {
      io.run_one_for(10ms);
    }
    (*reporter)->on_round(sampler);
  }

  ASSERT_EQ(seen.size(), 3u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].first, i + 1);
    EXPECT_EQ(seen[i].second, i) << "report " << seen[i].first << " recorded before it was sunk";
  }
  auto after = read_chain(chain_path(dir.path()));
  ASSERT_TRUE(after);
  EXPECT_EQ(after->seq, 3u);
  EXPECT_EQ(after->digest, (*reporter)->chain().digest);
}

}  // namespace
}  // namespace gridnode::agent
