#include "gridnode/collector/jetstream.hpp"

#include <asio/post.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "gridnode/platform/files.hpp"
#include "gridnode/collector/stream_record.hpp"

namespace gridnode::collector {
namespace {

constexpr std::int64_t kNsPerSecond = 1'000'000'000;

std::vector<std::string> split_servers(const std::string& servers) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= servers.size()) {
    std::size_t comma = servers.find(',', start);
    if (comma == std::string::npos) {
      comma = servers.size();
    }
    std::string one = servers.substr(start, comma - start);
    if (!one.empty()) {
      if (one.find("://") == std::string::npos) {
        one = "nats://" + one;
      }
      out.push_back(std::move(one));
    }
    start = comma + 1;
  }
  return out;
}

// A setting of an existing stream that is not what we would create.
std::string differs(const std::string& stream, const char* setting, const std::string& have,
                    const std::string& want) {
  return "stream " + stream + " exists with " + setting + "=" + have + ", this collector wants " +
         want + " (update the stream or the collector's options)";
}

}  // namespace

std::string subject_token(std::string_view s) {
  if (s.empty()) {
    return "_";
  }
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '.' || c == '*' || c == '>' || c == '%' || u <= 0x20 || u >= 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string report_subject(std::string_view region, std::string_view site, std::string_view node) {
  std::string s(kSubjectPrefix);
  s += '.';
  s += subject_token(region);
  s += '.';
  s += subject_token(site);
  s += '.';
  s += subject_token(node);
  return s;
}

std::string ChainState::encode() const {
  return std::to_string(seq) + " " + crypto::to_hex(digest) + " " + std::to_string(catalog_at) +
         " " + std::to_string(keyframe_at);
}

platform::Result<ChainState> ChainState::parse(std::string_view text, std::uint64_t revision) {
  ChainState s;
  s.revision = revision;
  std::vector<std::string_view> f;
  while (!text.empty()) {
    auto sp = text.find(' ');
    f.push_back(text.substr(0, sp));
    text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
  }
  auto bad = [] { return platform::fail(std::errc::invalid_argument, "chain entry malformed"); };
  if (f.size() != 4 || f[1].size() != 64) {
    return bad();
  }
  auto seq = platform::parse_uint64(f[0]);
  auto cat = platform::parse_uint64(f[2]);
  auto key = platform::parse_uint64(f[3]);
  if (!seq || !cat || !key) {
    return bad();
  }
  for (std::size_t i = 0; i < 32; ++i) {
    unsigned v = 0;
    if (std::sscanf(std::string(f[1].substr(i * 2, 2)).c_str(), "%2x", &v) != 1) {
      return bad();
    }
    s.digest[i] = static_cast<std::uint8_t>(v);
  }
  s.seq = *seq;
  s.catalog_at = *cat;
  s.keyframe_at = *key;
  return s;
}

jsSubOptions ordered_consumer(const std::string& stream, jsDeliverPolicy policy,
                              std::uint64_t start_seq) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = policy;
  so.Config.OptStartSeq = start_seq;
  return so;
}

platform::Error nats_error(natsStatus s, jsErrCode code, const std::string& what) {
  std::string text = what + ": " + natsStatus_GetText(s);
  if (code != 0) {
    text += " (jetstream error " + std::to_string(static_cast<int>(code)) + ")";
  }
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && text.find(last) == std::string::npos) {
    text += ": ";
    text += last;
  }
  std::errc e = s == NATS_TIMEOUT             ? std::errc::timed_out
                : s == NATS_NOT_FOUND         ? std::errc::no_such_file_or_directory
                : s == NATS_NO_SERVER         ? std::errc::connection_refused
                : s == NATS_CONNECTION_CLOSED ? std::errc::not_connected
                                              : std::errc::io_error;
  return platform::Error{std::make_error_code(e), std::move(text)};
}

platform::Result<std::unique_ptr<NatsClient>> NatsClient::connect(const std::string& servers,
                                                                  const std::string& name,
                                                                  std::chrono::milliseconds timeout,
                                                                  jsPubAckHandler ack,
                                                                  void* ack_closure) {
  std::unique_ptr<NatsClient> c(new NatsClient());
  std::vector<std::string> urls = split_servers(servers);
  if (urls.empty()) {
    return platform::fail(std::errc::invalid_argument, "no NATS server in \"" + servers + "\"");
  }
  std::vector<const char*> ptrs;
  for (const auto& u : urls) {
    ptrs.push_back(u.c_str());
  }
  natsStatus s = natsOptions_Create(&c->opts_);
  if (s == NATS_OK)
    s = natsOptions_SetServers(c->opts_, ptrs.data(), static_cast<int>(ptrs.size()));
  if (s == NATS_OK) s = natsOptions_SetName(c->opts_, name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(c->opts_, timeout.count());
  // Keep trying while a cluster node restarts: publishes time out meanwhile, and the agent retries.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(c->opts_, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(c->opts_, 250);
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(c->opts_, false);
  // A batch of 64 reports is ~130 KB of stream records (more with keyframes): 1 MiB lets the
  // flusher send a batch in one or two write(2)s rather than one per few records.
  if (s == NATS_OK) s = natsOptions_SetIOBufSize(c->opts_, 1 << 20);
  if (s != NATS_OK) {
    return tl::unexpected(nats_error(s, static_cast<jsErrCode>(0), "NATS options"));
  }
  s = natsConnection_Connect(&c->nc_, c->opts_);
  if (s != NATS_OK) {
    return tl::unexpected(nats_error(s, static_cast<jsErrCode>(0), "cannot connect to " + servers));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = timeout.count();
  jo.PublishAsync.AckHandler = ack;
  jo.PublishAsync.AckHandlerClosure = ack_closure;
  jo.PublishAsync.MaxPending = 65536;
  s = natsConnection_JetStream(&c->js_, c->nc_, &jo);
  if (s != NATS_OK) {
    return tl::unexpected(nats_error(s, static_cast<jsErrCode>(0), "JetStream context"));
  }
  return c;
}

NatsClient::~NatsClient() {
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
  }
  jsCtx_Destroy(js_);
  natsConnection_Destroy(nc_);
  natsOptions_Destroy(opts_);
}

std::optional<protocol::Bytes> fetch_catalog(jsCtx* js, const std::string& stream,
                                             const crypto::Digest& digest) {
  natsMsg* m = nullptr;
  if (js_GetLastMsg(&m, js, stream.c_str(), catalog_subject(digest).c_str(), nullptr, nullptr) !=
      NATS_OK) {
    natsMsg_Destroy(m);
    return std::nullopt;
  }
  const std::span<const std::uint8_t> data(
      reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(m)),
      static_cast<std::size_t>(natsMsg_GetDataLength(m)));
  auto rec = parse_stream_record(data);
  std::optional<protocol::Bytes> out;
  if (rec && rec->kind == StreamKind::catalog && rec->digest == digest) {
    out.emplace(rec->payload.begin(), rec->payload.end());
  }
  natsMsg_Destroy(m);
  return out;
}

platform::Result<void> ensure_stream(jsCtx* js, const JetStreamOptions& o) {
  const std::string subjects = std::string(kSubjectPrefix) + ".>";
  const std::int64_t max_age = o.max_age.count() * kNsPerSecond;
  const std::int64_t dups = o.duplicate_window.count() * kNsPerSecond;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js, o.stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    const jsStreamConfig* c = si->Config;
    std::string why;
    auto secs = [](std::int64_t ns) { return std::to_string(ns / kNsPerSecond) + "s"; };
    if (c->SubjectsLen != 1 || subjects != c->Subjects[0]) {
      why = differs(o.stream, "subjects", c->SubjectsLen > 0 ? c->Subjects[0] : "", subjects);
    } else if (c->Retention != js_LimitsPolicy) {
      why = differs(o.stream, "retention", std::to_string(c->Retention), "limits");
    } else if (c->Storage != js_FileStorage) {
      why = differs(o.stream, "storage", "memory", "file");
    } else if (c->MaxAge != max_age) {
      why = differs(o.stream, "max_age", secs(c->MaxAge), secs(max_age));
    } else if (c->MaxBytes != o.max_bytes) {
      why =
          differs(o.stream, "max_bytes", std::to_string(c->MaxBytes), std::to_string(o.max_bytes));
    } else if (c->Replicas != o.replicas) {
      why = differs(o.stream, "replicas", std::to_string(c->Replicas), std::to_string(o.replicas));
    } else if (c->Duplicates != dups) {
      why = differs(o.stream, "duplicates", secs(c->Duplicates), secs(dups));
    }
    jsStreamInfo_Destroy(si);
    if (!why.empty()) {
      return platform::fail(std::errc::invalid_argument, why);
    }
    return {};
  }
  if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
    return tl::unexpected(nats_error(s, jerr, "stream " + o.stream));
  }
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char* subj[] = {subjects.c_str()};
  sc.Name = o.stream.c_str();
  sc.Subjects = subj;
  sc.SubjectsLen = 1;
  sc.Retention = js_LimitsPolicy;
  sc.Discard = js_DiscardOld;
  sc.Storage = js_FileStorage;
  sc.MaxAge = max_age;
  sc.MaxBytes = o.max_bytes;
  sc.Replicas = o.replicas;
  sc.Duplicates = dups;
  jerr = static_cast<jsErrCode>(0);
  s = js_AddStream(&si, js, &sc, nullptr, &jerr);
  jsStreamInfo_Destroy(si);
  if (s != NATS_OK) {
    return tl::unexpected(nats_error(s, jerr, "cannot create stream " + o.stream));
  }
  return {};
}

platform::Result<kvStore*> ensure_bucket(jsCtx* js, const JetStreamOptions& o) {
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, js, o.bucket.c_str());
  if (s == NATS_OK) {
    return kv;
  }
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = o.bucket.c_str();
  kc.History = 1;
  kc.Replicas = o.replicas;
  kc.StorageType = js_FileStorage;
  s = js_CreateKeyValue(&kv, js, &kc);
  if (s != NATS_OK) {
    return tl::unexpected(
        nats_error(s, static_cast<jsErrCode>(0), "cannot create bucket " + o.bucket));
  }
  return kv;
}

platform::Result<std::unique_ptr<JetStreamSink>> JetStreamSink::open(asio::io_context& io,
                                                                     const JetStreamOptions& o) {
  std::unique_ptr<JetStreamSink> sink(new JetStreamSink(io, o));
  auto client = NatsClient::connect(o.servers, "gridnode-collector", o.timeout,
                                    &JetStreamSink::on_ack_thread, sink.get());
  if (!client) {
    return tl::unexpected(client.error());
  }
  sink->client_ = std::move(*client);
  if (auto r = ensure_stream(sink->client_->js(), o); !r) {
    return tl::unexpected(r.error());
  }
  auto kv = ensure_bucket(sink->client_->js(), o);
  if (!kv) {
    return tl::unexpected(kv.error());
  }
  sink->kv_ = *kv;
  sink->loaders_ = std::make_unique<asio::thread_pool>(kLoaders);
  return sink;
}

JetStreamSink::~JetStreamSink() {
  // The loads in flight first (they use the connection; each ends within options_.timeout);
  // a result they posted finds the sink gone.
  if (loaders_) {
    loaders_->join();
  }
  *alive_ = false;
  // Then the connection: no acknowledgement handler runs after it is closed.
  client_.reset();
  kvStore_Destroy(kv_);
}

namespace {

// What is left of a load's budget, for the next request (at least 1 ms).
std::int64_t left_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return std::max<std::int64_t>(1, left.count());
}

bool not_found(natsStatus s, jsErrCode e) {
  return s == NATS_NOT_FOUND || e == JSNoMessageFoundErr;
}

std::string message_data(natsMsg* m) {
  return std::string(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
}

}  // namespace

IngestOptions JetStreamSink::ingest_options(IngestOptions base) const {
  // The stream carries compact records, not JSON lines (docs/jetstream.md, "Message format").
  base.encoder = options_.json_lines ? &json_lines_encoder : &stream_record_encoder;
  // A node's catalog is written again before its last copy ages out of the stream, and after the
  // duplicate window, which would drop it (same message id): halfway between the two.
  const auto refresh = (options_.max_age + options_.duplicate_window) / 2;
  base.catalog_refresh_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(refresh).count());
  return base;
}

std::optional<std::uint64_t> JetStreamSink::known_last_at(const std::string& node, bool known) {
  const Position& pos = positions_[node];
  if (known && pos.valid) {
    return pos.chain.last_at;
  }
  return std::nullopt;
}

platform::Result<Sink::Loaded> JetStreamSink::load(const std::string& node, bool known) {
  return adopt(node, read_node(node, known_last_at(node, known)));
}

void JetStreamSink::load_async(const std::string& node, bool known, LoadDone done) {
  asio::post(*loaders_, [this, alive = alive_, node, known_last_at = known_last_at(node, known),
                         done = std::move(done)]() mutable {
    auto read = read_node(node, known_last_at);
    asio::post(io_, [this, alive = std::move(alive), node = std::move(node),
                     read = std::move(read), done = std::move(done)]() mutable {
      if (*alive) {
        done(adopt(node, std::move(read)));
      }
    });
    if (options_.on_load_step) {
      options_.on_load_step("posted");
    }
  });
}

platform::Result<Sink::Loaded> JetStreamSink::adopt(const std::string& node,
                                                    platform::Result<NodeRead> read) {
  Position& pos = positions_[node];
  if (!read) {
    // Nothing is known for sure (a leader election, a timeout): not trusted until a load succeeds.
    pos.valid = false;
    return tl::unexpected(read.error());
  }
  Loaded out;
  out.current = read->current;
  if (read->current) {
    return out;
  }
  // Another collector extended the node (or this one never had it): its records, to rebuild from.
  // Both formats: a stream written with json_lines holds JSON lines.
  RecordKeys keys;
  out.replay.reserve(read->replay.size());
  for (const std::string& msg : read->replay) {
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(msg.data()),
                                              msg.size());
    auto rec = is_stream_record(bytes) ? read_stream_record(bytes) : read_json_record(msg, keys);
    if (rec && rec->node == node) {
      out.replay.push_back(std::move(*rec));
    } else {
      ++out.unreadable;
    }
  }
  out.seq = read->state.seq;
  out.digest = read->state.digest;
  pos.chain = std::move(read->state);
  pos.valid = true;
  // Here, on the loop, not where the stream was read: a batch of the node whose acknowledgement
  // is handled after this must not write its position over the one read (write()'s check).
  ++pos.generation;
  return out;
}

void JetStreamSink::write(const SinkBatch& batch, Done done) {
  const std::string node(batch.node);
  Position& pos = positions_[node];
  ChainState after = pos.chain;
  after.seq = batch.seq;
  after.digest = batch.digest;
  auto text = std::make_shared<const std::string>(batch.text);
  const std::vector<RecordInfo> records(batch.records.begin(), batch.records.end());
  publish_batch(node, std::string(batch.region), std::string(batch.site), std::move(text), records,
                pos.chain, std::move(after),
                [this, node, generation = pos.generation,
                 done = std::move(done)](platform::Result<ChainState> s) {
                  Position& p = positions_[node];
                  if (!s) {
                    p.valid = false;  // memory may be ahead of the stream: read it again
                    done(tl::unexpected(s.error()));
                    return;
                  }
                  if (p.generation != generation) {
                    // A load replaced the position meanwhile: its stream position may be behind
                    // these records. Stored all the same; the node is read again next time.
                    p.valid = false;
                  } else {
                    p.chain = std::move(*s);
                  }
                  done({});
                });
}

platform::Result<JetStreamSink::NodeRead> JetStreamSink::read_node(
    const std::string& node, std::optional<std::uint64_t> known_last_at) {
  NodeRead out;
  jsCtx* js = client_->js();
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  jsOptions jo;
  jsOptions_Init(&jo);
  auto step = [this, &jo, deadline](std::string_view name) {
    if (options_.on_load_step) {
      options_.on_load_step(name);
    }
    jo.Wait = left_ms(deadline);
  };
  // The stream's end for the node: its last message on any of its subjects (one per region and
  // site it ever had), the fence its next record must name.
  step("last");
  const std::string filter = std::string(kSubjectPrefix) + ".*.*." + subject_token(node);
  {
    natsMsg* m = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetLastMsg(&m, js, options_.stream.c_str(), filter.c_str(), &jo, &jerr);
    if (s == NATS_OK) {
      out.state.last_at = natsMsg_GetSequence(m);
      out.state.subject = natsMsg_GetSubject(m);
    } else if (!not_found(s, jerr)) {
      natsMsg_Destroy(m);
      return tl::unexpected(nats_error(s, jerr, "last record of " + node));
    }
    natsMsg_Destroy(m);
  }
  if (known_last_at && *known_last_at == out.state.last_at) {
    out.current = true;  // nobody extended the node since this collector did
    return out;
  }
  // The bucket's entry: where the node's catalog and last keyframe are. Its last message, delete
  // and purge markers included.
  step("chain");
  const std::string kv_stream = "KV_" + options_.bucket;
  const std::string kv_subject = "$KV." + options_.bucket + "." + node;
  {
    natsMsg* e = nullptr;
    jsErrCode kerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetLastMsg(&e, js, kv_stream.c_str(), kv_subject.c_str(), &jo, &kerr);
    if (s == NATS_OK) {
      const std::uint64_t revision = natsMsg_GetSequence(e);
      const char* op = nullptr;
      if (natsMsgHeader_Get(e, "KV-Operation", &op) == NATS_OK) {
        out.state.revision = revision;  // deleted or purged
      } else {
        auto state = ChainState::parse(message_data(e), revision);
        if (!state) {
          natsMsg_Destroy(e);
          return tl::unexpected(platform::Error{state.error().code,
                                                "chain of " + node + ": " + state.error().context});
        }
        state->last_at = out.state.last_at;
        state->subject = std::move(out.state.subject);
        out.state = std::move(*state);
      }
    } else if (!not_found(s, kerr)) {
      natsMsg_Destroy(e);
      return tl::unexpected(nats_error(s, kerr, "chain of " + node));
    }
    natsMsg_Destroy(e);
  }
  if (out.state.last_at == 0) {
    return out;  // nothing of the node in the stream (new, or aged out): the bucket's position
  }
  std::set<crypto::Digest> catalogs;  // those in out.replay
  // The catalog first: the replayed reports are decoded against it. Gone from the stream (aged
  // out) is not an error: the agent sends its catalog again, and the replay below fetches the
  // catalogs its reports name.
  if (out.state.catalog_at > 0) {
    step("catalog");
    natsMsg* m = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetMsg(&m, js, options_.stream.c_str(), out.state.catalog_at, &jo, &jerr);
    if (s == NATS_OK) {
      out.replay.push_back(message_data(m));
    } else if (!not_found(s, jerr)) {
      natsMsg_Destroy(m);
      return tl::unexpected(nats_error(s, jerr, "catalog of " + node));
    }
    natsMsg_Destroy(m);
  }
  // Then the node's records from its last keyframe (from the first, without an index) to the
  // stream's end: an ordered consumer on the node's subjects, read until the message at last_at.
  step("replay");
  const std::uint64_t from = out.state.keyframe_at > 0 ? out.state.keyframe_at : 1;
  jsSubOptions so = ordered_consumer(options_.stream, js_DeliverByStartSequence, from);
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&sub, js, filter.c_str(), &jo, &so, &jerr);
  if (s != NATS_OK) {
    return tl::unexpected(nats_error(s, jerr, "replay of " + node));
  }
  std::size_t read = 0;
  for (std::uint64_t at = 0; at < out.state.last_at;) {
    natsMsg* m = nullptr;
    s = natsSubscription_NextMsg(&m, sub, left_ms(deadline));
    if (s != NATS_OK) {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
      return tl::unexpected(
          nats_error(s, static_cast<jsErrCode>(0),
                     "replay of " + node + " cut short after " + std::to_string(read) +
                         " records, before stream sequence " + std::to_string(out.state.last_at)));
    }
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
      at = meta->Sequence.Stream;
    }
    jsMsgMetaData_Destroy(meta);
    out.replay.push_back(message_data(m));
    ++read;
    natsMsg_Destroy(m);
    step("record");
    if (at == 0) {
      break;  // no metadata: not a JetStream message (cannot happen on this subscription)
    }
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  // A report may name a catalog other than the one at catalog_at (the bucket's index is behind
  // the stream when a collector died between its records and its entry): fetched by digest.
  std::vector<std::string> replay;
  replay.reserve(out.replay.size());
  for (auto& msg : out.replay) {
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(msg.data()),
                                              msg.size());
    if (auto rec = parse_stream_record(bytes); is_stream_record(bytes) && rec) {
      if (rec->kind == StreamKind::catalog) {
        catalogs.insert(rec->digest);
      } else if (rec->kind == StreamKind::report && !catalogs.contains(rec->header.catalog)) {
        step("catalog");
        catalogs.insert(rec->header.catalog);
        natsMsg* m = nullptr;
        jerr = static_cast<jsErrCode>(0);
        s = js_GetLastMsg(&m, js, options_.stream.c_str(),
                          catalog_subject(rec->header.catalog).c_str(), &jo, &jerr);
        if (s == NATS_OK) {
          replay.push_back(message_data(m));
        } else if (!not_found(s, jerr)) {
          natsMsg_Destroy(m);
          return tl::unexpected(nats_error(s, jerr, "catalog of " + node));
        }
        natsMsg_Destroy(m);
      }
    }
    replay.push_back(std::move(msg));
  }
  out.replay = std::move(replay);
  return out;
}

void JetStreamSink::on_ack_thread(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                                  void* closure) {
  auto* self = static_cast<JetStreamSink*>(closure);
  Token t;
  bool known = false;
  {
    std::lock_guard lock(self->mu_);
    auto it = self->inflight_.find(msg);
    if (it != self->inflight_.end()) {
      t = it->second;
      self->inflight_.erase(it);
      known = true;
    }
  }
  natsMsg_Destroy(msg);
  if (!known) {
    return;
  }
  Ack a;
  a.token = t;
  a.ok = pa != nullptr;
  a.seq = a.ok ? pa->Sequence : 0;
  a.conflict = pae != nullptr && pae->ErrCode == JSStreamWrongLastSequenceErr;
  if (pae != nullptr) {
    a.why = pae->ErrText != nullptr ? pae->ErrText : natsStatus_GetText(pae->Err);
  }
  // One wake-up of the loop for all the acknowledgements that arrive meanwhile, not one each.
  bool post = false;
  {
    std::lock_guard lock(self->mu_);
    self->acks_.push_back(std::move(a));
    post = !self->drain_posted_;
    self->drain_posted_ = true;
  }
  if (post) {
    asio::post(self->io_, [self] { self->drain_acks(); });
  }
}

void JetStreamSink::drain_acks() {
  std::vector<Ack> acks;
  {
    std::lock_guard lock(mu_);
    acks.swap(acks_);
    drain_posted_ = false;
  }
  for (Ack& a : acks) {
    on_ack(a.token, a.ok, a.seq, a.conflict, std::move(a.why));
  }
}

bool JetStreamSink::publish(std::uint64_t batch, int record, natsMsg* msg, jsPubOptions* opts) {
  {
    std::lock_guard lock(mu_);
    inflight_[msg] = Token{batch, record};
  }
  natsMsg* owned = msg;
  natsStatus s = js_PublishMsgAsync(client_->js(), &owned, opts);
  if (s != NATS_OK) {
    std::lock_guard lock(mu_);
    inflight_.erase(msg);
    natsMsg_Destroy(owned);
    return false;
  }
  return true;
}

void JetStreamSink::publish_batch(const std::string& node, const std::string& region,
                                  const std::string& site, std::shared_ptr<const std::string> text,
                                  const std::vector<RecordInfo>& records, const ChainState& before,
                                  ChainState after, Published done) {
  const std::uint64_t id = ++next_batch_;
  Batch& b = batches_[id];
  b.node = node;
  b.before = before;
  b.after = after;
  b.done = std::move(done);
  b.records = records;
  b.text = std::move(text);
  b.subject = report_subject(region, site, node);
  b.fence = before.last_at;
  b.deadline = std::chrono::steady_clock::now() + options_.timeout;
  arm_deadlines();
  if (before.last_at > 0 && before.subject != b.subject) {
    // The node's region or site changed: its records go to another subject, whose own last
    // message is the fence there (rare: one round trip on the loop).
    natsMsg* m = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetLastMsg(&m, client_->js(), options_.stream.c_str(), b.subject.c_str(),
                                 nullptr, &jerr);
    b.fence = s == NATS_OK ? natsMsg_GetSequence(m) : 0;
    natsMsg_Destroy(m);
    if (s != NATS_OK && !not_found(s, jerr)) {
      b.failed = nats_error(s, jerr, "last record on " + b.subject).context;
    }
  }
  for (std::size_t i = 0; i < records.size() && b.failed.empty(); ++i) {
    const RecordInfo& r = records[i];
    // A catalog goes to its own subject (catalog_subject), so that a consumer can find it by
    // digest, at once: it is no link of the node's chain (a refused batch may leave its catalog,
    // which names no node's position). Reports and gap records go on the node's subject, one
    // after the other (publish_next).
    if (r.kind != protocol::FrameKind::catalog || options_.json_lines) {
      b.chain.push_back(i);
      continue;
    }
    const std::string catalog = catalog_subject(r.digest);
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, catalog.c_str(), nullptr, b.text->data() + r.offset,
                       static_cast<int>(r.size)) != NATS_OK) {
      b.failed = "cannot create a NATS message";
      break;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = r.id.c_str();
    if (!publish(id, static_cast<int>(i), msg, &po)) {
      b.failed = std::string("cannot publish: ") + nats_GetLastError(nullptr);
      break;
    }
    ++b.pending;
  }
  if (b.failed.empty()) {
    publish_next(id, b);
  }
  if (b.pending == 0) {
    finish(id);
  }
}

void JetStreamSink::publish_next(std::uint64_t id, Batch& b) {
  if (b.next >= b.chain.size() || !b.failed.empty()) {
    return;
  }
  const std::size_t i = b.chain[b.next++];
  const RecordInfo& r = b.records[i];
  // A JSON line is published without its '\n'.
  const std::size_t size = options_.json_lines && r.size > 0 ? r.size - 1 : r.size;
  natsMsg* msg = nullptr;
  if (natsMsg_Create(&msg, b.subject.c_str(), nullptr, b.text->data() + r.offset,
                     static_cast<int>(size)) != NATS_OK) {
    b.failed = "cannot create a NATS message";
    return;
  }
  // The fence: JetStream stores the record only if the node's last message is still the one this
  // collector knows ("0": none yet). Set as a header, as jsPubOptions cannot say "0".
  const std::string fence = std::to_string(b.fence);
  if (natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", fence.c_str()) != NATS_OK) {
    natsMsg_Destroy(msg);
    b.failed = "cannot create a NATS message";
    return;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = r.id.c_str();
  if (!publish(id, static_cast<int>(i), msg, &po)) {
    b.failed = std::string("cannot publish: ") + nats_GetLastError(nullptr);
    return;
  }
  ++b.pending;
}

void JetStreamSink::on_ack(Token t, bool ok, std::uint64_t seq, bool conflict, std::string why) {
  auto it = batches_.find(t.batch);
  if (it == batches_.end()) {
    return;  // the batch timed out meanwhile
  }
  Batch& b = it->second;
  if (!ok) {
    if (b.failed.empty()) {
      b.failed = why.empty() ? "publish failed" : why;
    }
    b.conflict = b.conflict || (conflict && t.record >= 0);
  } else if (t.record < 0) {
    b.after.revision = seq;
  } else {
    const RecordInfo& r = b.records[static_cast<std::size_t>(t.record)];
    if (r.kind == protocol::FrameKind::catalog) {
      b.after.catalog_at = std::max(b.after.catalog_at, seq);
    } else if (r.kind == protocol::FrameKind::report && r.keyframe) {
      b.after.keyframe_at = std::max(b.after.keyframe_at, seq);
    }
    if (r.kind != protocol::FrameKind::catalog || options_.json_lines) {
      // A duplicate (a republish the window absorbed) names the original's sequence, which is
      // not after the fence.
      b.fence = std::max(b.fence, seq);
      publish_next(t.batch, b);
    }
  }
  if (b.pending > 0 && --b.pending == 0) {
    finish(t.batch);
  }
}

void JetStreamSink::publish_chain(std::uint64_t id, Batch& b) {
  const std::string subject = "$KV." + options_.bucket + "." + b.node;
  const std::string value = b.after.encode();
  natsMsg* msg = nullptr;
  if (natsMsg_Create(&msg, subject.c_str(), nullptr, value.data(),
                     static_cast<int>(value.size())) != NATS_OK) {
    b.failed = "cannot create a NATS message";
    return;
  }
  // The index moves on without a compare-and-set: the records' fence decided already, and an
  // entry behind the stream only makes a takeover's replay longer (load reads to the stream's end).
  jsPubOptions po;
  jsPubOptions_Init(&po);
  b.kv_stage = true;
  if (!publish(id, -1, msg, &po)) {
    b.failed = std::string("cannot publish the chain: ") + nats_GetLastError(nullptr);
    return;
  }
  b.pending = 1;
}

void JetStreamSink::arm_deadlines() {
  if (deadlines_armed_ || batches_.empty()) {
    return;
  }
  auto earliest = std::chrono::steady_clock::time_point::max();
  for (const auto& [id, b] : batches_) {
    earliest = std::min(earliest, b.deadline);
  }
  if (!deadlines_) {
    deadlines_ = std::make_unique<asio::steady_timer>(io_);
  }
  deadlines_armed_ = true;
  deadlines_->expires_at(earliest);
  deadlines_->async_wait([this, alive = alive_](const std::error_code& ec) {
    if (!*alive || ec) {
      return;
    }
    deadlines_armed_ = false;
    expire_batches();
  });
}

void JetStreamSink::expire_batches() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> late;
  for (const auto& [id, b] : batches_) {
    if (b.deadline <= now) {
      late.push_back(id);
    }
  }
  for (std::uint64_t id : late) {
    auto it = batches_.find(id);
    if (it == batches_.end()) {
      continue;
    }
    it->second.failed = "no acknowledgement from JetStream within " +
                        std::to_string(options_.timeout.count()) + " ms";
    it->second.pending = 0;
    {
      // Acknowledgements that may never come (the connection was lost) leave nothing behind.
      std::lock_guard lock(mu_);
      std::erase_if(inflight_, [id](const auto& e) { return e.second.batch == id; });
    }
    finish(id);
  }
  arm_deadlines();
}

void JetStreamSink::finish(std::uint64_t id) {
  auto it = batches_.find(id);
  if (it == batches_.end()) {
    return;
  }
  Batch& b = it->second;
  // The index moves only when where a takeover starts reading moves: a new keyframe or catalog.
  // Between those a takeover reads from the same keyframe to the stream's end anyway, so most
  // batches (a keyframe every 60 reports by default) end at their records' acknowledgement,
  // without a second publish and round trip.
  const bool index_moves =
      b.after.keyframe_at != b.before.keyframe_at || b.after.catalog_at != b.before.catalog_at;
  if (b.failed.empty() && !b.kv_stage && index_moves) {
    publish_chain(id, b);
    if (b.failed.empty()) {
      return;  // the chain's acknowledgement finishes it
    }
  }
  Batch done = std::move(b);
  batches_.erase(it);
  done.after.last_at = done.fence;
  done.after.subject = done.subject;
  if (!done.failed.empty()) {
    done.done(platform::fail(
        std::errc::resource_unavailable_try_again,
        done.conflict ? "chain of " + done.node +
                            " moved on by another collector (JetStream: " + done.failed + ")"
                      : "JetStream: " + done.failed));
    return;
  }
  done.done(done.after);
}

}  // namespace gridnode::collector
