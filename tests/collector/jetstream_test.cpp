// The JetStream sink against a real nats-server (started here, on loopback, with its own store
// directory and ports it picked itself; stopped by its PID).
#include "gridnode/collector/jetstream.hpp"

#include <gtest/gtest.h>

#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "gridnode/collector/export.hpp"
#include "nats_server.hpp"
#include "signing_node.hpp"
#include "gridnode/collector/store.hpp"
#include "temp_dir.hpp"

namespace gridnode::collector {
namespace {

using testing::Batch;
using testing::NatsServer;
using testing::Node;
using testing::reports;

platform::Result<std::unique_ptr<Store>> open_jetstream(asio::io_context& io,
                                                        const JetStreamOptions& o,
                                                        IngestOptions ingest = {}) {
  auto sink = JetStreamSink::open(io, o);
  if (!sink) {
    return tl::unexpected(sink.error());
  }
  return Store::open(std::move(*sink), ingest);
}

platform::Result<std::unique_ptr<Store>> open_jsonl(asio::io_context& io, const std::string& path,
                                                    IngestOptions ingest = {}) {
  auto sink = JsonlSink::open(io, path);
  if (!sink) {
    return tl::unexpected(sink.error());
  }
  return Store::open(std::move(*sink), ingest);
}

// Runs the loop until the commit is done.
platform::Result<IngestResult> commit_and_wait(asio::io_context& io, Store& store, NodeIngest& node,
                                               const Batch& batch) {
  std::optional<platform::Result<IngestResult>> out;
  auto frames = batch.frames();
  store.commit(node, frames, [&out](platform::Result<IngestResult> r) { out = std::move(r); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!out && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  if (!out) {
    return platform::fail(std::errc::timed_out, "commit did not finish");
  }
  return *out;
}

std::uint64_t stream_messages(const std::string& url) {
  auto c = NatsClient::connect(url, "test", std::chrono::milliseconds(2000)).value();
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, c->js(), "GRIDNODE_REPORTS", nullptr, nullptr) != NATS_OK) {
    return 0;
  }
  std::uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

// The node's reports on its subject (region east, site dc1) in stream order: seq, prev, digest.
struct Link {
  std::uint64_t seq = 0;
  crypto::Digest prev{}, digest{};
};
std::vector<Link> node_chain(const std::string& url, const std::string& node) {
  auto c = NatsClient::connect(url, "test", std::chrono::milliseconds(2000)).value();
  const std::string stream = "GRIDNODE_REPORTS";  // so points at it
  jsSubOptions so = ordered_consumer(stream, js_DeliverAll);
  natsSubscription* sub = nullptr;
  std::vector<Link> out;
  const std::string subject = report_subject("east", "dc1", node);
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (natsStatus st = js_SubscribeSync(&sub, c->js(), subject.c_str(), nullptr, &so, &jerr);
      st != NATS_OK) {
    ADD_FAILURE() << nats_error(st, jerr, "cannot read " + subject).context;
    return out;
  }
  natsMsg* m = nullptr;
  while (natsSubscription_NextMsg(&m, sub, 500) == NATS_OK) {
    auto rec = parse_stream_record(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(m)),
        static_cast<std::size_t>(natsMsg_GetDataLength(m))));
    if (rec && rec->kind == StreamKind::report) {
      out.push_back({rec->header.seq, rec->header.prev, rec->digest});
    }
    natsMsg_Destroy(m);
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  return out;
}

// "": every report once, each linking to the one before; else where the chain breaks.
std::string chain_break(const std::vector<Link>& chain) {
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (chain[i].seq != chain[i - 1].seq + 1 || chain[i].prev != chain[i - 1].digest) {
      return "report " + std::to_string(chain[i].seq) + " after report " +
             std::to_string(chain[i - 1].seq) +
             (chain[i].prev != chain[i - 1].digest ? " it does not link to" : "");
    }
  }
  return "";
}

// Polls `flag` (set by a loader thread) for up to 10 s.
bool wait_for(const std::atomic<bool>& flag) {
  for (int i = 0; i < 1000 && !flag; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return flag;
}

// The node's last record as export renders it (its catalog fetched from the stream by digest).
nlohmann::json last_record(const std::string& url, const std::string& node) {
  auto c = NatsClient::connect(url, "test", std::chrono::milliseconds(2000)).value();
  natsMsg* m = nullptr;
  const std::string subject = report_subject("east", "dc1", node);
  if (js_GetLastMsg(&m, c->js(), "GRIDNODE_REPORTS", subject.c_str(), nullptr, nullptr) !=
      NATS_OK) {
    return {};
  }
  jsCtx* js = c->js();
  StreamRecordRenderer renderer(
      [js](const crypto::Digest& d) { return fetch_catalog(js, "GRIDNODE_REPORTS", d); });
  std::string line;
  auto r = renderer.render(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(m)),
                                    static_cast<std::size_t>(natsMsg_GetDataLength(m))),
      line);
  natsMsg_Destroy(m);
  EXPECT_TRUE(r) << r.error().message();
  return r ? nlohmann::json::parse(line) : nlohmann::json{};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// kill(SIGSTOP) returns before every thread of the process has stopped: a thread running on
// another CPU goes on for a moment, and may still answer a request sent right after. Waits (up to
// 2 s) until each thread's state in /proc is T (stopped).
bool all_threads_stopped(pid_t pid) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (int i = 0; i < 200; ++i) {
    bool all = true;
    for (const auto& t : std::filesystem::directory_iterator(tasks)) {
      std::string stat = read_file(t.path().string() + "/stat");
      // "tid (comm) S ...": the state follows the last ')'.
      const auto close = stat.rfind(')');
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') {
        all = false;
        break;
      }
    }
    if (all) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

constexpr std::uint64_t kReceived = 1'800'000'000'000'000'000ull;
std::uint64_t fixed_clock() { return kReceived; }

class JetStream : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NatsServer::installed()) {
      GTEST_SKIP() << "nats-server not installed (./gridnode.sh deps)";
    }
    server_ = std::make_unique<NatsServer>();
    ASSERT_FALSE(server_->url().empty()) << "nats-server did not start";
    options_.servers = server_->url();
    options_.timeout = std::chrono::milliseconds(3000);
    options_.max_bytes = 256 << 20;  // within what any test machine's nats-server grants
  }
  std::unique_ptr<Store> open() {
    auto s = open_jetstream(io_, options_);
    EXPECT_TRUE(s) << (s ? "" : s.error().message());
    return s ? std::move(*s) : nullptr;
  }
  asio::io_context io_{1};
  std::unique_ptr<NatsServer> server_;
  JetStreamOptions options_;
};

// Two collectors that both see a node (a half-open connection) and get the same reports: JetStream
// drops the republished messages (same ids), both acknowledge, the stream holds them once.
TEST_F(JetStream, TheSameReportsThroughTwoCollectorsAreStoredOnce) {
  Node n("node-1");
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  NodeIngest* na = a->node(n.id, n.key->public_key()).value();
  NodeIngest* nb = b->node(n.id, n.key->public_key()).value();
  Batch first = reports(n, 3, true);
  auto ra = commit_and_wait(io_, *a, *na, first);
  ASSERT_TRUE(ra) << ra.error().message();
  EXPECT_EQ(ra->ack_seq, 3u);
  auto rb = commit_and_wait(io_, *b, *nb, first);
  ASSERT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(rb->ack_seq, 3u);
  EXPECT_EQ(stream_messages(server_->url()), 4u);  // catalog and 1..3, once

  // The agent reconnects to B: B reads where the stream ends and goes on from there.
  nb = b->node(n.id, n.key->public_key()).value();
  EXPECT_EQ(nb->have_seq(), 3u);
  Batch second = reports(n, 2, false);
  rb = commit_and_wait(io_, *b, *nb, second);
  ASSERT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(rb->ack_seq, 5u);
  // A, behind, gets them too: duplicates again.
  ra = commit_and_wait(io_, *a, *na, second);
  ASSERT_TRUE(ra) << ra.error().message();
  EXPECT_EQ(stream_messages(server_->url()), 6u);

  // A third collector takes over: its state rebuilt from the stream decodes the next delta.
  auto c = open();
  NodeIngest* nc = c->node(n.id, n.key->public_key()).value();
  EXPECT_EQ(nc->have_seq(), 5u);
  Batch third = reports(n, 1, false);
  auto rc = commit_and_wait(io_, *c, *nc, third);
  ASSERT_TRUE(rc) << rc.error().message();
  auto last = last_record(server_->url(), n.id);
  EXPECT_EQ(last["seq"], 6);
  EXPECT_FALSE(last.contains("values_error")) << last.dump();
  EXPECT_GT(last["metrics"].size(), 0u);
}

TEST_F(JetStream, ARepublishAfterACrashIsDeduplicated) {
  Node n("node-2");
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  auto a = open();
  ASSERT_TRUE(a);
  NodeIngest* na = a->node(n.id, n.key->public_key()).value();
  Batch first = reports(n, 4, true);
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, first));
  // The collector dies after the PubAcks but before the bucket moved (here: a new collector that
  // never saw the node, fed the same batch by the agent that got no acknowledgement).
  {
    auto c = NatsClient::connect(server_->url(), "test", std::chrono::milliseconds(2000)).value();
    kvStore* kv = nullptr;
    ASSERT_EQ(js_KeyValue(&kv, c->js(), "GRIDNODE_CHAIN"), NATS_OK);
    ASSERT_EQ(kvStore_Purge(kv, n.id.c_str(), nullptr), NATS_OK);
    kvStore_Destroy(kv);
  }
  auto b = open();
  NodeIngest* nb = b->node(n.id, n.key->public_key()).value();
  // The stream is the truth: B resumes after report 4 (read from the stream's first record, the
  // bucket having no index), and the agent's republish is a duplicate.
  EXPECT_EQ(nb->have_seq(), 4u);
  auto r = commit_and_wait(io_, *b, *nb, first);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(stream_messages(server_->url()), 5u);  // still catalog and 1..4, once
  Batch second = reports(n, 2, false);
  r = commit_and_wait(io_, *b, *nb, second);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->ack_seq, 6u);
  auto last = last_record(server_->url(), n.id);
  EXPECT_EQ(last["seq"], 6);
  EXPECT_FALSE(last.contains("values_error")) << last.dump();
}

// Two agents with one identity (a copied state directory), each on its own collector, both
// resuming from report 3: their reports 4 and 5 differ (other values, other digests, so no
// de-duplication). The stream itself refuses the second batch (its first record expects the
// node's last message to be report 3's): one chain, nothing of the refused batch stored.
TEST_F(JetStream, ForkedBatchesOfTwoCollectorsLeaveOneChainInTheStream) {
  Node n("node-5", 1);  // every report a keyframe: both forks decode on their own
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  NodeIngest* na = a->node(n.id, n.key->public_key()).value();
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, reports(n, 3, true)));
  NodeIngest* nb = b->node(n.id, n.key->public_key()).value();
  na = a->node(n.id, n.key->public_key()).value();
  ASSERT_EQ(na->have_seq(), 3u);
  ASSERT_EQ(nb->have_seq(), 3u);
  const std::uint64_t seq = n.seq;
  const crypto::Digest prev = n.prev;
  Batch fork_a = reports(n, 2, false);
  n.seq = seq;
  n.prev = prev;
  Batch fork_b = reports(n, 2, false);
  auto ra = commit_and_wait(io_, *a, *na, fork_a);
  ASSERT_TRUE(ra) << ra.error().message();
  EXPECT_EQ(ra->ack_seq, 5u);
  auto rb = commit_and_wait(io_, *b, *nb, fork_b);
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.error().code, std::errc::resource_unavailable_try_again);
  EXPECT_NE(rb.error().message().find("moved on by another collector"), std::string::npos)
      << rb.error().message();
  EXPECT_EQ(stream_messages(server_->url()), 6u);  // catalog, 1..3, A's 4 and 5: one chain
  // B's agent comes back: B resumes from the stream's end (A's report 5), its fork is refused.
  nb = b->node(n.id, n.key->public_key()).value();
  EXPECT_EQ(nb->have_seq(), 5u);
  EXPECT_EQ(nb->have_digest(), na->have_digest());
  // And A goes on from its own state without reading the node again.
  n.seq = 5;
  n.prev = na->have_digest();
  ASSERT_TRUE(a->node(n.id, n.key->public_key()));
  ra = commit_and_wait(io_, *a, *na, reports(n, 1, false));
  ASSERT_TRUE(ra) << ra.error().message();
  EXPECT_EQ(ra->ack_seq, 6u);
  EXPECT_EQ(stream_messages(server_->url()), 7u);
}

// A takeover whose reads stop half-way (the server stops answering: a leader election, a lost
// route) fails, rather than resuming with a replay cut short (whose next deltas would be stored
// without values); once the server answers again the load succeeds and decodes the next delta.
TEST_F(JetStream, ATakeoverCutShortFailsAndTheNextOneIsWhole) {
  Node n("node-6");  // a keyframe every 4 reports: a takeover replays deltas
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  auto a = open();
  ASSERT_TRUE(a);
  NodeIngest* na = a->node(n.id, n.key->public_key()).value();
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, reports(n, 6, true)));
  // The server stops answering when the load asks for the node's catalog, and answers again at
  // the load's next step (what a leader election does): the catalog's request timed out.
  options_.timeout = std::chrono::seconds(2);  // the whole load's budget, here and on the retry
  bool stopped = false;
  options_.on_load_step = [this, &stopped](std::string_view step) {
    if (step == "catalog" && !stopped) {
      stopped = ::kill(server_->pid(), SIGSTOP) == 0 && all_threads_stopped(server_->pid());
    } else if (stopped) {
      ::kill(server_->pid(), SIGCONT);
    }
  };
  auto b = open();
  ASSERT_TRUE(b);
  auto nb = b->node(n.id, n.key->public_key());
  ::kill(server_->pid(), SIGCONT);
  EXPECT_TRUE(stopped);
  ASSERT_FALSE(nb) << "loaded have_seq " << (*nb)->have_seq();
  EXPECT_EQ(nb.error().code, std::errc::timed_out) << nb.error().message();
  EXPECT_NE(nb.error().message().find("catalog of node-6"), std::string::npos)
      << nb.error().message();
  // The agent comes back: a whole load, the next delta decoded.
  options_.on_load_step = nullptr;
  nb = b->node(n.id, n.key->public_key());
  ASSERT_TRUE(nb) << nb.error().message();
  EXPECT_EQ((*nb)->have_seq(), 6u);
  ASSERT_TRUE(commit_and_wait(io_, *b, **nb, reports(n, 1, false)));
  auto last = last_record(server_->url(), n.id);
  EXPECT_EQ(last["seq"], 7);
  EXPECT_FALSE(last.contains("values_error")) << last.dump();
}

// A takeover's reads run off the loop (Store::node_async): while a slow server keeps a node's load
// waiting, the loop goes on (other sessions' reports, timers), a second connection of the node and
// a batch of its old connection are told to come back, and the load's result arrives on the loop.
// A store that goes while a load is in flight drops its result.
TEST_F(JetStream, ANodeLoadsOffTheLoop) {
  Node n("node-9");
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  std::atomic<bool> slow{false};
  std::atomic<std::thread::id> load_thread{};
  options_.on_load_step = [&](std::string_view step) {
    if (slow) {
      load_thread = std::this_thread::get_id();
      if (step == "last") {
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
      }
    }
  };
  auto a = open();
  ASSERT_TRUE(a);
  NodeIngest* na = a->node(n.id, n.key->public_key()).value();
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, reports(n, 5, true)));
  auto b = open();
  ASSERT_TRUE(b);
  NodeIngest* old = b->node(n.id, n.key->public_key()).value();  // the node's old connection
  ASSERT_EQ(old->have_seq(), 5u);
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, reports(n, 1, false)));  // moved on by A: a takeover
  slow = true;
  std::optional<platform::Result<NodeIngest*>> loaded;
  b->node_async(n.id, n.key->public_key(),
                [&loaded](platform::Result<NodeIngest*> r) { loaded = std::move(r); });
  std::optional<platform::Result<NodeIngest*>> second;
  b->node_async(n.id, n.key->public_key(),
                [&second](platform::Result<NodeIngest*> r) { second = std::move(r); });
  ASSERT_TRUE(second.has_value()) << "a second connection waits for nothing";
  ASSERT_FALSE(*second);
  EXPECT_EQ(second->error().code, std::errc::resource_unavailable_try_again);
  Batch stale = reports(n, 1, false);
  auto refused = commit_and_wait(io_, *b, *old, stale);
  ASSERT_FALSE(refused) << "a batch of the node was committed while it loaded";
  EXPECT_EQ(refused.error().code, std::errc::resource_unavailable_try_again);
  EXPECT_NE(refused.error().message().find("being loaded"), std::string::npos)
      << refused.error().message();
  // The loop ticks every 10 ms while the load sleeps 400 ms on its own thread.
  int ticks = 0;
  asio::steady_timer tick(io_);
  std::function<void()> arm = [&] {
    tick.expires_after(std::chrono::milliseconds(10));
    tick.async_wait([&](const std::error_code& ec) {
      if (!ec && !loaded) {
        ++ticks;
        arm();
      }
    });
  };
  arm();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!loaded && std::chrono::steady_clock::now() < deadline) {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(10));
  }
  tick.cancel();
  ASSERT_TRUE(loaded.has_value()) << "the load never came back";
  ASSERT_TRUE(*loaded) << loaded->error().message();
  EXPECT_EQ((**loaded)->have_seq(), 6u);
  EXPECT_GE(ticks, 20) << "the loop stood still while the node loaded";
  EXPECT_NE(load_thread.load(), std::this_thread::get_id());
  n.seq = 6;
  n.prev = (**loaded)->have_digest();
  ASSERT_TRUE(commit_and_wait(io_, *b, ***loaded, reports(n, 1, false)));
  EXPECT_EQ(last_record(server_->url(), n.id)["seq"], 7);

  // Gone while loading: its loader is joined, the result never runs.
  auto c = open();
  ASSERT_TRUE(c);
  bool ran = false;
  c->node_async(n.id, n.key->public_key(), [&ran](platform::Result<NodeIngest*>) { ran = true; });
  c.reset();
  io_.restart();
  io_.run_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(ran);
  EXPECT_EQ(chain_break(node_chain(server_->url(), n.id)), "");
}

// The interleaving of Store::node_async's comment (store.cpp), played step by step: a node's old
// connection (session A) goes on committing while a load for its new one (session B, a twin's:
// one identity, another chain from report 7 on) runs. A's batches must not land between the
// load's read and its adoption; whatever each step is answered, the stream holds one chain.
// With d25f3de (no refusal while loading, no generation check) the twin's report 7 followed A's.
TEST_F(JetStream, ALoadAndABatchOfTheNodeDoNotCross) {
  Node n("node-8", 1);  // every report a keyframe: the twin's reports decode on their own
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  std::atomic<bool> armed{false}, at_last{false}, release{false}, posted{false};
  options_.on_load_step = [&](std::string_view step) {
    if (!armed) {
      return;
    }
    if (step == "last") {
      at_last = true;
      wait_for(release);
    } else if (step == "posted") {
      posted = true;
    }
  };
  auto b = open();
  ASSERT_TRUE(b);
  NodeIngest* a = b->node(n.id, n.key->public_key()).value();  // session A
  ASSERT_TRUE(commit_and_wait(io_, *b, *a, reports(n, 5, true)));
  // 1. Session B's load starts; held before it reads where the node's records end.
  armed = true;
  std::optional<platform::Result<NodeIngest*>> loaded;
  b->node_async(n.id, n.key->public_key(),
                [&loaded](platform::Result<NodeIngest*> r) { loaded = std::move(r); });
  ASSERT_TRUE(wait_for(at_last));
  // 2. A's report 6.
  Batch six = reports(n, 1, false);
  auto r6 = commit_and_wait(io_, *b, *a, six);
  // 3. The load reads the stream; its result waits on the loop.
  release = true;
  ASSERT_TRUE(wait_for(posted));
  // 4. A's report 7, committed before the load's result is adopted; its acknowledgement comes
  // after (5, 6: queued behind the result).
  Batch seven = reports(n, 1, false);
  auto frames = seven.frames();
  std::optional<platform::Result<IngestResult>> r7;
  b->commit(*a, frames, [&r7](platform::Result<IngestResult> r) { r7 = std::move(r); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((!loaded || !r7) && std::chrono::steady_clock::now() < deadline) {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(loaded && r7);
  ASSERT_TRUE(*loaded) << loaded->error().message();
  NodeIngest* twin = **loaded;  // session B
  // 7. The twin, welcomed where B's state says the node is, sends its own next two reports.
  n.seq = twin->have_seq();
  n.prev = twin->have_digest();
  auto rt = commit_and_wait(io_, *b, *twin, reports(n, 2, false));
  const auto chain = node_chain(server_->url(), n.id);
  EXPECT_EQ(chain_break(chain), "") << chain.size() << " reports in the stream";
  // Here: A's batches are refused while B loads (its agent reconnects), the twin goes on.
  ASSERT_FALSE(r6);
  EXPECT_EQ(r6.error().code, std::errc::resource_unavailable_try_again);
  ASSERT_FALSE(*r7);
  EXPECT_EQ(r7->error().code, std::errc::resource_unavailable_try_again);
  EXPECT_TRUE(rt) << rt.error().message();
  EXPECT_EQ(chain.size(), 7u);
}

// A batch JetStream does not acknowledge within the timeout fails (the agent retries): each at
// its own deadline, from one timer for all batches (a batch published later is not failed with
// an earlier one). The server stopped with SIGSTOP: the publishes sit in its socket.
TEST_F(JetStream, EachBatchNotAcknowledgedInTimeFailsAtItsOwnDeadline) {
  options_.timeout = std::chrono::milliseconds(1000);
  Node n1("node-11"), n2("node-12");
  n1.labels = n2.labels = {{"region", "east"}, {"site", "dc1"}};
  auto b = open();
  ASSERT_TRUE(b);
  NodeIngest* i1 = b->node(n1.id, n1.key->public_key()).value();
  NodeIngest* i2 = b->node(n2.id, n2.key->public_key()).value();
  ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
  ASSERT_TRUE(all_threads_stopped(server_->pid()));
  using Clock = std::chrono::steady_clock;
  struct Outcome {
    Clock::time_point started, ended;
    std::optional<platform::Result<IngestResult>> result;
  } o1, o2;
  Batch b1 = reports(n1, 1, true), b2 = reports(n2, 1, true);
  auto f1 = b1.frames(), f2 = b2.frames();
  auto commit = [&](NodeIngest& node, std::vector<protocol::Frame>& frames, Outcome& o) {
    o.started = Clock::now();
    b->commit(node, frames, [&o](platform::Result<IngestResult> r) {
      o.ended = Clock::now();
      o.result = std::move(r);
    });
  };
  commit(*i1, f1, o1);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  auto run_until = [&](auto done, Clock::time_point until) {
    while (!done() && Clock::now() < until) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(10));
    }
  };
  run_until([] { return false; }, Clock::now() + std::chrono::milliseconds(500));
  commit(*i2, f2, o2);
  run_until([&] { return o1.result && o2.result; }, deadline);
  ::kill(server_->pid(), SIGCONT);
  ASSERT_TRUE(o1.result && o2.result) << "a batch waited past its deadline";
  for (const Outcome* o : {&o1, &o2}) {
    ASSERT_FALSE(*o->result);
    EXPECT_EQ(o->result->error().code, std::errc::resource_unavailable_try_again);
    EXPECT_NE(o->result->error().message().find("no acknowledgement from JetStream within 1000 ms"),
              std::string::npos)
        << o->result->error().message();
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(o->ended - o->started).count();
    EXPECT_GE(waited, 950) << "failed before its own deadline";
    EXPECT_LT(waited, 3000);
  }
  // The server answers again: the nodes are read again, and go on.
  auto again = b->node(n1.id, n1.key->public_key());
  ASSERT_TRUE(again) << again.error().message();
  n1.seq = (*again)->have_seq();
  n1.prev = (*again)->have_digest();
  auto r = commit_and_wait(io_, *b, **again, reports(n1, 1, (*again)->have_seq() == 0));
  EXPECT_TRUE(r) << r.error().message();
}

// A session that outlives the stream's max_age: its catalog record is written again (halfway
// between the duplicate window and max_age after it was last written), so that after the first
// copy aged out the node's reports can still be decoded from the stream.
TEST_F(JetStream, ACatalogIsWrittenAgainBeforeItAgesOut) {
  options_.max_age = std::chrono::seconds(6);
  options_.duplicate_window = std::chrono::seconds(1);  // a refresh every 3.5 s
  Node n("node-10");
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  auto a = open();
  ASSERT_TRUE(a);
  NodeIngest* na = a->node(n.id, n.key->public_key()).value();
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, reports(n, 3, true)));
  std::this_thread::sleep_for(std::chrono::milliseconds(3800));
  ASSERT_TRUE(commit_and_wait(io_, *a, *na, reports(n, 1, false)));
  // The first batch (its catalog at stream sequence 1) ages out; the second batch does not yet.
  auto c = NatsClient::connect(server_->url(), "test", std::chrono::milliseconds(2000)).value();
  bool first_gone = false;
  for (int i = 0; i < 100 && !first_gone; ++i) {  // the first copy goes at 6 s, the second at ~9.8
    natsMsg* m = nullptr;
    first_gone = js_GetMsg(&m, c->js(), "GRIDNODE_REPORTS", 1, nullptr, nullptr) == NATS_NOT_FOUND;
    natsMsg_Destroy(m);
    if (!first_gone) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_TRUE(first_gone) << "the first batch never aged out";
  EXPECT_TRUE(fetch_catalog(c->js(), "GRIDNODE_REPORTS", n.catalog.digest).has_value())
      << "the node's catalog aged out of the stream with its first copy";
  auto last = last_record(server_->url(), n.id);
  EXPECT_EQ(last["seq"], 4);
  EXPECT_FALSE(last.contains("values_error")) << last.dump();
  EXPECT_GT(last["metrics"].size(), 0u);
}

// The stream carries compact records; `export` renders them into exactly the lines a JSONL
// collector writes for the same reports, skips (and counts) a message it cannot read, and writes
// nothing twice when run again.
TEST_F(JetStream, ExportWritesTheJsonlSinksLines) {
  Node n("node-3");
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  n.events = {{protocol::EventKind::device, 3, "nvml", "XID 79", {{"gpu", "0"}}}};
  testing::TempDir dir;
  auto js = open_jetstream(io_, options_, {.clock_ns = &fixed_clock}).value();
  auto jsonl = open_jsonl(io_, dir.path() + "/sink.jsonl", {.clock_ns = &fixed_clock}).value();
  NodeIngest* a = js->node(n.id, n.key->public_key()).value();
  NodeIngest* b = jsonl->node(n.id, n.key->public_key()).value();
  for (int i = 0; i < 5; ++i) {
    Batch batch = reports(n, 7, i == 0);
    if (i == 3) {
      batch.add(testing::FrameKind::gap, n.gap(100, 101));
    }
    ASSERT_TRUE(commit_and_wait(io_, *js, *a, batch));
    ASSERT_TRUE(commit_and_wait(io_, *jsonl, *b, batch));
  }
  {
    // Something else published on the stream's subjects: not a record.
    auto c = NatsClient::connect(server_->url(), "test", std::chrono::milliseconds(2000)).value();
    const char junk[] = "\x01garbage";
    ASSERT_EQ(js_Publish(nullptr, c->js(), "gridnode.reports.east.dc1.node-3", junk,
                         sizeof junk - 1, nullptr, nullptr),
              NATS_OK);
  }
  ExportOptions eo;
  eo.from = server_->url();
  eo.sink = dir.path() + "/archive.jsonl";
  eo.drain = true;
  ASSERT_EQ(export_stream(eo), 0);
  const std::string want = read_file(dir.path() + "/sink.jsonl");
  EXPECT_EQ(std::count(want.begin(), want.end(), '\n'), 1 + 35 + 1);
  EXPECT_EQ(read_file(eo.sink), want);
  ASSERT_EQ(export_stream(eo), 0);
  EXPECT_EQ(read_file(eo.sink), want);
}

// An exporter killed after JetStream delivered it a message, before it wrote it (here: a pull
// request on the exporter's consumer from a connection that closes without acknowledging, as a
// kill -9 leaves it): the next run still writes that message, in stream order, and every other
// one once. (Acknowledging with AckAll, the next run's acknowledgement of a later message
// covered it, and it was never written.)
TEST_F(JetStream, ExportWritesAMessageDeliveredToAKilledExporter) {
  Node n("node-7");
  n.labels = {{"region", "east"}, {"site", "dc1"}};
  testing::TempDir dir;
  auto js = open_jetstream(io_, options_, {.clock_ns = &fixed_clock}).value();
  auto jsonl = open_jsonl(io_, dir.path() + "/sink.jsonl", {.clock_ns = &fixed_clock}).value();
  NodeIngest* a = js->node(n.id, n.key->public_key()).value();
  NodeIngest* b = jsonl->node(n.id, n.key->public_key()).value();
  auto both = [&](const Batch& batch) {
    ASSERT_TRUE(commit_and_wait(io_, *js, *a, batch));
    ASSERT_TRUE(commit_and_wait(io_, *jsonl, *b, batch));
  };
  both(reports(n, 3, true));
  ExportOptions eo;
  eo.from = server_->url();
  eo.sink = dir.path() + "/archive.jsonl";
  eo.drain = true;
  ASSERT_EQ(export_stream(eo), 0);
  both(reports(n, 5, false));
  {
    // The "killed exporter": one message delivered to it, never acknowledged.
    natsConnection* nc = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, server_->url().c_str()), NATS_OK);
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_SubscribeSync(&sub, nc, "_DEAD.x"), NATS_OK);
    const char next[] = "{\"batch\":1}";
    ASSERT_EQ(natsConnection_PublishRequest(nc,
                                            "$JS.API.CONSUMER.MSG.NEXT.GRIDNODE_REPORTS."
                                            "gridnode-export",
                                            "_DEAD.x", next, sizeof next - 1),
              NATS_OK);
    natsMsg* m = nullptr;
    ASSERT_EQ(natsSubscription_NextMsg(&m, sub, 5000), NATS_OK);
    EXPECT_GT(natsMsg_GetDataLength(m), 0);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
  ASSERT_EQ(export_stream(eo), 0);
  both(reports(n, 2, false));
  ASSERT_EQ(export_stream(eo), 0);
  const std::string want = read_file(dir.path() + "/sink.jsonl");
  EXPECT_EQ(std::count(want.begin(), want.end(), '\n'), 1 + 10);
  EXPECT_EQ(read_file(eo.sink), want);
  // The position the archive keeps: the stream sequence of its last record.
  EXPECT_EQ(read_file(eo.sink + ".pos"), "11\n");
}

TEST_F(JetStream, AnExistingStreamWithOtherSettingsIsAnErrorNamingTheSetting) {
  ASSERT_TRUE(open());
  options_.max_age = std::chrono::seconds(3600);
  auto s = open_jetstream(io_, options_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("max_age=604800s"), std::string::npos) << s.error().message();
  options_.max_age = std::chrono::hours(24 * 7);
  options_.replicas = 3;
  s = open_jetstream(io_, options_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("replicas=1"), std::string::npos) << s.error().message();
}

TEST(JetStreamSubjects, TokensAreEscaped) {
  EXPECT_EQ(report_subject("east", "dc1", "node-1"), "gridnode.reports.east.dc1.node-1");
  EXPECT_EQ(report_subject("", "a b", "n.1"), "gridnode.reports._.a%20b.n%2E1");
  EXPECT_EQ(subject_token("*>%"), "%2A%3E%25");
}

TEST(ChainState, RoundTrips) {
  ChainState s;
  s.seq = 42;
  s.digest[0] = 0xab;
  s.digest[31] = 0x01;
  s.catalog_at = 7;
  s.keyframe_at = 40;
  auto back = ChainState::parse(s.encode(), 9).value();
  EXPECT_EQ(back.seq, 42u);
  EXPECT_EQ(back.digest, s.digest);
  EXPECT_EQ(back.catalog_at, 7u);
  EXPECT_EQ(back.keyframe_at, 40u);
  EXPECT_EQ(back.revision, 9u);
  EXPECT_FALSE(ChainState::parse("1 2 3", 1));
  EXPECT_FALSE(ChainState::parse("x " + std::string(64, '0') + " 1 2", 1));
}

}  // namespace
}  // namespace gridnode::collector
