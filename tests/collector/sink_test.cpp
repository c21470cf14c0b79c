// The JSONL sink's group commit, through the Store as the sessions call it (server.cpp sends a
// batch's ack from its commit's `done`): many sessions' batches share one fdatasync, and no
// `done` runs before the fdatasync that covers its batch returned. The fdatasync is the real
// one, called through the sink's seam, which counts the calls and notes how many bytes of the
// file each covered.
#include "gridnode/collector/sink.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "signing_node.hpp"
#include "gridnode/collector/store.hpp"
#include "temp_dir.hpp"

namespace gridnode::collector {
namespace {

using testing::Batch;
using testing::Node;
using testing::reports;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The seqs of `node`'s report lines in `text`.
std::set<std::uint64_t> report_seqs(const std::string& text, const std::string& node) {
  std::set<std::uint64_t> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "report" && j["node"] == node) {
      out.insert(j["seq"].get<std::uint64_t>());
    }
  }
  return out;
}

struct Syncs {
  int calls = 0;
  off_t covered = 0;  // the file's size when the last fdatasync returned
  bool fail = false;
  JsonlFile::Datasync seam() {
    return [this](int fd) {
      ++calls;
      if (fail) {
        errno = EIO;
        return -1;
      }
      const int r = ::fdatasync(fd);
      struct stat st {};
      ::fstat(fd, &st);
      covered = st.st_size;
      return r;
    };
  }
};

class GroupCommit : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "sink.jsonl";
    store_ = Store::open(JsonlSink::open(io_, path_, {.datasync = syncs_.seam()}).value(), {})
                 .value();
    for (int i = 0; i < kSessions; ++i) {
      nodes_.push_back(std::make_unique<Node>("node-" + std::to_string(i + 1)));
      ingests_.push_back(store_->node(nodes_.back()->id, nodes_.back()->key->public_key()).value());
    }
  }
  // What one session's commit saw when its `done` ran.
  struct Acked {
    bool ran = false;
    platform::Result<IngestResult> result = platform::fail(std::errc::operation_in_progress, "");
    int syncs_before = 0;                 // fdatasyncs returned by then
    std::set<std::uint64_t> durable;      // the node's reports within the bytes they covered
  };
  // Every session hands the store a batch before the loop runs, as sessions whose reads complete
  // in one turn of the loop do; then the loop runs until it is idle.
  std::vector<Acked> round(int count, bool first) {
    std::vector<Acked> acked(kSessions);
    std::vector<Batch> batches;
    batches.reserve(kSessions);
    std::vector<std::vector<protocol::Frame>> frames(kSessions);
    for (int i = 0; i < kSessions; ++i) {
      batches.push_back(reports(*nodes_[i], count, first));
      frames[i] = batches.back().frames();
      store_->commit(*ingests_[i], frames[i], [this, i, &acked](platform::Result<IngestResult> r) {
        Acked& a = acked[i];
        a.ran = true;
        a.result = std::move(r);
        a.syncs_before = syncs_.calls;
        a.durable = report_seqs(read_all(path_).substr(0, static_cast<std::size_t>(syncs_.covered)),
                                nodes_[i]->id);
      });
      EXPECT_FALSE(acked[i].ran) << "session " << i << " heard back before any fdatasync";
    }
    io_.restart();
    io_.run();
    return acked;
  }

  static constexpr int kSessions = 8;
  testing::TempDir dir_;
  std::string path_;
  asio::io_context io_{1};
  Syncs syncs_;
  std::unique_ptr<Store> store_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<NodeIngest*> ingests_;
};

TEST_F(GroupCommit, ManySessionsBatchesShareOneFdatasyncAndNoAckPrecedesIt) {
  auto first = round(3, true);
  EXPECT_EQ(syncs_.calls, 1) << "one fdatasync for " << kSessions << " sessions' batches";
  for (int i = 0; i < kSessions; ++i) {
    const Acked& a = first[i];
    ASSERT_TRUE(a.ran) << i;
    ASSERT_TRUE(a.result) << a.result.error().message();
    EXPECT_EQ(a.result->ack_seq, 3u);
    EXPECT_EQ(a.syncs_before, 1) << "session " << i << " acknowledged before the fdatasync";
    // Everything it may acknowledge lies within what the fdatasync made durable.
    EXPECT_EQ(a.durable, (std::set<std::uint64_t>{1, 2, 3})) << i;
  }
  // The next turn: again one fdatasync for all, each ack after it.
  auto second = round(2, false);
  EXPECT_EQ(syncs_.calls, 2);
  for (int i = 0; i < kSessions; ++i) {
    ASSERT_TRUE(second[i].result) << second[i].result.error().message();
    EXPECT_EQ(second[i].result->ack_seq, 5u);
    EXPECT_EQ(second[i].syncs_before, 2);
    EXPECT_EQ(second[i].durable, (std::set<std::uint64_t>{1, 2, 3, 4, 5})) << i;
  }
  // And a restart replays them all, in order.
  store_.reset();
  auto again = Store::open(JsonlSink::open(io_, path_).value(), {}).value();
  EXPECT_EQ(again->stats().records_replayed, kSessions * (1u + 5u));
  EXPECT_EQ(again->node(nodes_[0]->id, nodes_[0]->key->public_key()).value()->have_seq(), 5u);
}

TEST_F(GroupCommit, AFailedFdatasyncFailsEveryBatchOfItAndAcknowledgesNothing) {
  syncs_.fail = true;
  auto acked = round(3, true);
  EXPECT_EQ(syncs_.calls, 1);
  for (const Acked& a : acked) {
    ASSERT_TRUE(a.ran);
    ASSERT_FALSE(a.result);
    // Not "try again": the sink failed, and the collector stops.
    EXPECT_NE(a.result.error().code, std::errc::resource_unavailable_try_again);
    EXPECT_NE(a.result.error().message().find("cannot sync sink"), std::string::npos)
        << a.result.error().message();
  }
  // Nothing more is taken, and no node is welcomed from a memory ahead of the file.
  EXPECT_FALSE(store_->node(nodes_[0]->id, nodes_[0]->key->public_key()));
}

TEST_F(GroupCommit, ANewConnectionWhileTheNodesBatchIsQueuedIsRefused) {
  Batch b = reports(*nodes_[0], 4, true);
  auto frames = b.frames();
  bool ran = false;
  store_->commit(*ingests_[0], frames, [&ran](platform::Result<IngestResult> r) {
    ASSERT_TRUE(r);
    ran = true;
  });
  // Its welcome would name reports 1..4, not yet durable.
  auto refused = store_->node(nodes_[0]->id, nodes_[0]->key->public_key());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, std::errc::resource_unavailable_try_again);
  io_.run();
  ASSERT_TRUE(ran);
  EXPECT_EQ(syncs_.calls, 1);
  EXPECT_EQ(store_->node(nodes_[0]->id, nodes_[0]->key->public_key()).value()->have_seq(), 4u);
}

}  // namespace
}  // namespace gridnode::collector
