#include "gridnode/collector/export.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/collector/remote_sender.hpp"
#include "gridnode/collector/sink.hpp"
#include "gridnode/collector/stream_record.hpp"

namespace gridnode::collector {
namespace {

using platform::Level;
using platform::LogLine;

constexpr int kFetch = 1024;
// The ids of this many last lines are remembered: more than JetStream can deliver again after a
// crash (one fetched batch, acknowledged as a whole once it is on disk).
constexpr std::size_t kRecent = 4 * kFetch;

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

// The ids of the last kRecent records written: what may come again.
class RecentIds {
 public:
  bool contains(const std::string& id) const { return set_.contains(id); }
  void add(std::string id) {
    if (id.empty() || !set_.insert(id).second) {
      return;
    }
    order_.push_back(std::move(id));
    if (order_.size() > kRecent) {
      set_.erase(order_.front());
      order_.pop_front();
    }
  }

 private:
  std::unordered_set<std::string> set_;
  std::deque<std::string> order_;
};

// "<archive>.pos": the stream sequence of the last record the archive holds, written after the
// archive's fdatasync. Nothing: no such file (a new archive, or one written before the file).
platform::Result<std::optional<std::uint64_t>> read_position(const std::string& path) {
  char buf[64];
  auto text = platform::read_small_file(path, buf);
  if (!text) {
    if (text.error().code == std::errc::no_such_file_or_directory) {
      return std::optional<std::uint64_t>();
    }
    return tl::unexpected(text.error());
  }
  std::string_view t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) {
    t.remove_suffix(1);
  }
  auto v = platform::parse_uint64(t);
  if (!v) {
    return platform::fail(std::errc::invalid_argument, path + ": not a stream sequence");
  }
  return std::optional<std::uint64_t>(*v);
}

// Consecutive failed fetches (each after the client's own reconnect attempts) before the
// consumer is made again.
constexpr int kFailuresBeforeReopen = 5;
// Idle fetches (a second each) between two checks that the consumer still exists.
constexpr int kIdleChecks = 5;

// Waits between attempts: 0.5 s, doubling to 10 s.
struct Backoff {
  int ms = 500;
  void wait() {
    for (int waited = 0; waited < ms && !g_stop; waited += 100) {
      nats_Sleep(100);
    }
    ms = std::min(ms * 2, 10'000);
  }
};

// After a failed attempt `e`: false for a drain (the error printed) or once stopped; otherwise
// logs it, waits and answers true.
bool keep_trying(const ExportOptions& o, Backoff& backoff, const platform::Error& e) {
  if (o.drain) {
    std::fprintf(stderr, "gridnode-collector export: %s\n", e.message().c_str());
    return false;
  }
  if (g_stop) {
    return false;
  }
  platform::log(
      Level::warning, "export",
      LogLine("waiting for the stream").kv("retry_ms", backoff.ms).kv("err", e.message()));
  backoff.wait();
  return !g_stop;
}

// The pull subscription on the durable consumer. `at_position`: it starts right after
// `position`, made afresh (a durable's start cannot be changed); what was written after the
// position was saved (a kill between the fdatasync and the position's write) comes again and is
// recognised by its id. Otherwise the existing consumer is kept as it is.
platform::Result<natsSubscription*> open_consumer(jsCtx* js, const ExportOptions& o,
                                                  std::uint64_t position, bool at_position) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = o.stream.c_str();
  so.Config.Durable = o.durable.c_str();
  so.Config.AckPolicy = js_AckAll;
  so.Config.DeliverPolicy = js_DeliverAll;
  if (at_position) {
    jsErrCode derr = static_cast<jsErrCode>(0);
    natsStatus d = js_DeleteConsumer(js, o.stream.c_str(), o.durable.c_str(), nullptr, &derr);
    if (d != NATS_OK && d != NATS_NOT_FOUND && derr != JSConsumerNotFoundErr) {
      return tl::unexpected(nats_error(d, derr, "consumer " + o.durable));
    }
    if (position > 0) {
      so.Config.DeliverPolicy = js_DeliverByStartSequence;
      so.Config.OptStartSeq = position + 1;
    }
  }
  so.Config.MaxAckPending = 2 * kFetch;
  so.Config.AckWait = std::int64_t{60} * 1'000'000'000;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const std::string subjects = std::string(kSubjectPrefix) + ".>";
  natsStatus s = js_PullSubscribe(&sub, js, subjects.c_str(), o.durable.c_str(), &jo, &so, &jerr);
  if (s != NATS_OK) {
    return tl::unexpected(nats_error(s, jerr, "consumer " + o.durable));
  }
  return sub;
}
}  // namespace

std::string record_id(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string() ||
      !j.contains("node") || !j["node"].is_string()) {
    return "";
  }
  const std::string type = j["type"].get<std::string>();
  const std::string node = j["node"].get<std::string>();
  auto num = [&j](const char* k) -> std::string {
    return j.contains(k) && j[k].is_number_unsigned() ? std::to_string(j[k].get<std::uint64_t>())
                                                      : "";
  };
  auto str = [&j](const char* k) -> std::string {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  // As NodeIngest names them (RecordInfo::id).
  if (type == "report") {
    return node + ":" + num("seq") + ":" + str("digest");
  }
  if (type == "gap") {
    return node + ":gap:" + num("from_seq") + "-" + num("to_seq");
  }
  if (type == "catalog") {
    return node + ":catalog:" + str("digest");
  }
  return "";
}

int export_stream(const ExportOptions& o) {
  auto targets = make_remote_targets(o.remote_write);
  if (!targets) {
    std::fprintf(stderr, "gridnode-collector export: %s\n", targets.error().message().c_str());
    return 2;
  }
  // The file first: its last records are what a crash may have left unacknowledged.
  std::deque<std::string> tail;
  auto sink = JsonlFile::open(o.sink);
  auto read = sink ? (*sink)->read_lines([&tail](std::string_view line) {
    tail.emplace_back(line);
    if (tail.size() > kRecent) {
      tail.pop_front();
    }
  })
                   : platform::Result<std::size_t>(tl::unexpected(sink.error()));
  if (!read) {
    std::fprintf(stderr, "gridnode-collector export: %s\n", read.error().message().c_str());
    return 2;
  }
  RecentIds recent;
  for (const auto& line : tail) {
    recent.add(record_id(line));
  }
  const bool archive_empty = tail.empty();
  tail.clear();
  // The archive's own position is the truth, not the consumer's acknowledgements: a message
  // JetStream delivered to an exporter killed before it wrote it would be covered by the next
  // run's acknowledgement of a later one (AckAll) and never written.
  const std::string pos_path = o.sink + ".pos";
  auto pos = read_position(pos_path);
  if (!pos) {
    std::fprintf(stderr, "gridnode-collector export: %s\n", pos.error().message().c_str());
    return 2;
  }
  std::uint64_t position = pos->value_or(0);
  // An archive written before the position file (none, but lines) keeps its consumer as it is.
  bool at_position = pos->has_value() || archive_empty;
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  // The archive is the senders' queue: they deliver what it holds also while the stream's
  // servers are away.
  RemoteWriters writers;
  if (auto r = writers.start(*targets, o.sink); !r) {
    std::fprintf(stderr, "gridnode-collector export: %s\n", r.error().message().c_str());
    return 2;
  }
  // A service waits out what a cluster does (a server restarting, a leader election that times
  // the consumer's creation out); a drain (tests, cron) fails at once, for its caller to retry.
  Backoff backoff;
  std::unique_ptr<NatsClient> client;
  while (!client) {
    auto c = NatsClient::connect(o.from, "gridnode-export", o.timeout);
    if (c) {
      client = std::move(*c);
    } else if (!keep_trying(o, backoff, c.error())) {
      return g_stop ? 0 : 2;
    }
  }
  jsCtx* js = client->js();
  natsSubscription* sub = nullptr;
  while (sub == nullptr) {
    auto c = open_consumer(js, o, position, at_position);
    if (c) {
      sub = *c;
    } else if (!keep_trying(o, backoff, c.error())) {
      return g_stop ? 0 : 2;
    }
  }
  platform::log(Level::notice, "export",
                LogLine("started").kv("from", o.from).kv("sink", o.sink).kv("durable", o.durable));
  // Stream records become the JSONL sink's lines here. A report naming a catalog this run has
  // not read (the export resumed after it) fetches it by its subject.
  StreamRecordRenderer renderer(
      [js, &o](const crypto::Digest& digest) { return fetch_catalog(js, o.stream, digest); });
  std::uint64_t written = 0, skipped = 0, unreadable = 0;
  std::string lines;
  int rc = 0;
  int failures = 0, idle = 0;
  // Made again after the archive's position: a consumer that is gone (deleted, lost with its
  // servers) or keeps failing. What comes again is skipped by position and id.
  auto reopen = [&](const platform::Error& e) {
    natsSubscription_Destroy(sub);
    sub = nullptr;
    platform::log(Level::warning, "export",
                  LogLine("consumer lost, made again")
                      .kv("after", static_cast<std::int64_t>(position))
                      .kv("err", e.message()));
    while (sub == nullptr && !g_stop) {
      auto c = open_consumer(js, o, position, at_position);
      if (c) {
        sub = *c;
      } else {
        keep_trying(o, backoff, c.error());
      }
    }
    failures = 0;
    idle = 0;
  };
  while (!g_stop && sub != nullptr) {
    natsMsgList list{};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&list, sub, kFetch, 1000, &jerr);
    if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
      natsMsgList_Destroy(&list);
      if (o.drain) {
        break;  // nothing came for a second: drained
      }
      // A deleted consumer looks idle (a pull nobody answers): asked after, once idle a while.
      if (++idle % kIdleChecks == 0) {
        jsConsumerInfo* ci = nullptr;
        jsErrCode cerr = static_cast<jsErrCode>(0);
        natsStatus c = natsSubscription_GetConsumerInfo(&ci, sub, nullptr, &cerr);
        jsConsumerInfo_Destroy(ci);
        if (c == NATS_NOT_FOUND || cerr == JSConsumerNotFoundErr || cerr == JSStreamNotFoundErr) {
          reopen(nats_error(c, cerr, "consumer " + o.durable));
        }
      }
      continue;
    }
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      if (s == NATS_CONNECTION_CLOSED) {
        platform::log(Level::err, "export", LogLine("connection closed"));
        rc = 1;
        break;
      }
      // A cluster node restarting: the client reconnects and the consumer resumes.
      if (++failures < kFailuresBeforeReopen) {
        nats_Sleep(100);
        continue;
      }
      platform::Error e = nats_error(s, jerr, "fetch from consumer " + o.durable);
      if (o.drain) {
        std::fprintf(stderr, "gridnode-collector export: %s\n", e.message().c_str());
        rc = 1;
        break;
      }
      reopen(e);
      continue;
    }
    idle = 0;
    failures = 0;
    backoff = Backoff{};
    lines.clear();
    std::uint64_t batch_skipped = 0;
    std::uint64_t last_at = 0;
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      const char* id = nullptr;
      std::string key = natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr
                            ? std::string(id)
                            : std::string();
      jsMsgMetaData* meta = nullptr;
      std::uint64_t at = 0;
      if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        at = meta->Sequence.Stream;
      }
      jsMsgMetaData_Destroy(meta);
      if (at > 0 && at <= position) {
        ++batch_skipped;  // archived already (a redelivery)
        continue;
      }
      last_at = std::max(last_at, at);
      if (!key.empty() && recent.contains(key)) {
        ++batch_skipped;  // written before a crash, after the position was saved
        continue;
      }
      const std::span<const std::uint8_t> data(
          reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(m)),
          static_cast<std::size_t>(natsMsg_GetDataLength(m)));
      if (auto r = renderer.render(data, lines); !r) {
        // Not a record this exporter can write (garbage, a newer format, a catalog gone from
        // the stream): counted and skipped, so that one bad message cannot stop the archive.
        if (unreadable++ == 0) {
          platform::log(Level::warning, "export",
                        LogLine("message skipped").kv("id", key).kv("err", r.error().message()));
        }
        continue;
      }
      recent.add(std::move(key));
      ++written;
    }
    if (!lines.empty()) {
      auto a = (*sink)->append(lines);
      auto y = a ? (*sink)->sync() : a;
      if (!y) {
        platform::log(Level::err, "export", LogLine("sink failed").kv("err", y.error().message()));
        natsMsgList_Destroy(&list);
        rc = 1;
        break;
      }
    }
    skipped += batch_skipped;
    if (last_at > position) {
      // On disk: the position follows (a crash before it only makes the next run skip by id).
      if (auto w = platform::write_file_atomic(pos_path, std::to_string(last_at) + "\n", 0644);
          !w) {
        platform::log(Level::err, "export", LogLine("sink failed").kv("err", w.error().message()));
        natsMsgList_Destroy(&list);
        rc = 1;
        break;
      }
      position = last_at;
      at_position = true;
    }
    // Acknowledged (AckAll: the last one covers those before it) so that JetStream does not
    // deliver the batch again in this run; the next run starts from the position anyway.
    (void)natsMsg_AckSync(list.Msgs[list.Count - 1], nullptr, nullptr);
    natsMsgList_Destroy(&list);
  }
  if (sub != nullptr) {
    natsSubscription_Destroy(sub);  // keeps the durable consumer: the next run resumes there
  }
  if (o.drain && rc == 0 && !writers.empty() && !g_stop &&
      !writers.wait_caught_up(std::chrono::seconds(60))) {
    platform::log(Level::err, "export",
                  LogLine("remote-write targets not caught up after 60 s (the next run goes on)"));
    rc = 1;
  }
  writers.stop();
  platform::log(Level::notice, "export",
                LogLine("stopped")
                    .kv("written", static_cast<std::int64_t>(written))
                    .kv("skipped_again", static_cast<std::int64_t>(skipped))
                    .kv("unreadable", static_cast<std::int64_t>(unreadable)));
  return rc;
}

}  // namespace gridnode::collector
