#include "gridnode/collector/capacity.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>

#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "gridnode/http/server.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/collector/jetstream.hpp"
#include "gridnode/collector/stream_record.hpp"
#include "text.hpp"

namespace gridnode::collector {
namespace {

using platform::Level;
using platform::LogLine;
namespace cm = capacity_metrics;

std::uint64_t now_unix_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Quantiles over the last samples (freshness: sample time to the view holding it).
class Window {
 public:
  void add(double v) {
    if (values_.size() < kSize) {
      values_.push_back(v);
    } else {
      values_[next_] = v;
    }
    next_ = (next_ + 1) % kSize;
  }
  double quantile(double q) const {
    if (values_.empty()) {
      return 0;
    }
    std::vector<double> v = values_;
    auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
  }
  std::size_t size() const { return values_.size(); }

 private:
  static constexpr std::size_t kSize = 16384;
  std::vector<double> values_;
  std::size_t next_ = 0;
};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

enum class CapacityRole : std::uint8_t {
  none,
  accelerators,
  busy,
  idle,
  unhealthy,
  memory_free,
  power_headroom,
  dcgm_fb_free,
  dcgm_util,
  dcgm_power,
  dcgm_power_limit,
};

namespace {

CapacityRole role_of(std::string_view name) {
  using R = CapacityRole;
  return name == cm::kAccelerators     ? R::accelerators
         : name == cm::kBusy           ? R::busy
         : name == cm::kIdle           ? R::idle
         : name == cm::kUnhealthy      ? R::unhealthy
         : name == cm::kMemoryFree     ? R::memory_free
         : name == cm::kPowerHeadroom  ? R::power_headroom
         : name == cm::kDcgmFbFree     ? R::dcgm_fb_free
         : name == cm::kDcgmUtil       ? R::dcgm_util
         : name == cm::kDcgmPower      ? R::dcgm_power
         : name == cm::kDcgmPowerLimit ? R::dcgm_power_limit
                                       : R::none;
}

// Adds up one report's series into its NodeCapacity, whichever format they came in.
class Summary {
 public:
  explicit Summary(NodeCapacity& c) : c_(c) {}

  void add(CapacityRole role, double v, std::string_view gpu, std::string_view model,
           std::string_view vendor = {}) {
    using R = CapacityRole;
    switch (role) {
      case R::none:
        break;
      case R::accelerators:
        summary_ = true;
        c_.accelerators += count(v);
        share(vendor).v.accelerators += count(v);
        if (c_.model.empty()) {
          c_.model = model;
        }
        break;
      case R::busy:
        c_.busy += count(v);
        share(vendor).v.busy += count(v);
        break;
      case R::idle:
        idle_ = idle_.value_or(0) + count(v);
        share(vendor).idle = share(vendor).idle.value_or(0) + count(v);
        break;
      case R::unhealthy:
        unhealthy_ = unhealthy_.value_or(0) + count(v);
        share(vendor).unhealthy = share(vendor).unhealthy.value_or(0) + count(v);
        break;
      case R::memory_free:
        c_.memory_free_bytes += v;
        share(vendor).v.memory_free_bytes += v;
        break;
      case R::power_headroom:
        c_.power_headroom_watts += v;
        share(vendor).v.power_headroom_watts += v;
        break;
      case R::dcgm_fb_free:
        gpus_.emplace(gpu);
        fb_free_mib_ += v;
        if (dcgm_model_.empty()) {
          dcgm_model_ = model;
        }
        break;
      case R::dcgm_util:
        if (v > 0) {
          busy_gpus_.emplace(gpu);
        }
        break;
      case R::dcgm_power:
        power_ += v;
        break;
      case R::dcgm_power_limit:
        limit_ += v;
        break;
    }
  }

  void finish() {
    if (unhealthy_) {
      c_.unhealthy = *unhealthy_;
    } else if (idle_) {
      const std::uint32_t answering = c_.busy + *idle_;
      c_.unhealthy = c_.accelerators > answering ? c_.accelerators - answering : 0;
    }
    if (summary_ && c_.model.empty()) {
      c_.model = dcgm_model_;
    }
    if (!summary_ && !gpus_.empty()) {
      c_.accelerators = static_cast<std::uint32_t>(gpus_.size());
      c_.busy = static_cast<std::uint32_t>(busy_gpus_.size());
      c_.memory_free_bytes = fb_free_mib_ * 1024 * 1024;
      c_.power_headroom_watts = limit_ > power_ ? limit_ - power_ : 0;
      c_.model = dcgm_model_;
      shares_.clear();
      c_.vendors.clear();
      c_.vendors["nvidia"] = {c_.accelerators, c_.busy, 0, c_.memory_free_bytes,
                              c_.power_headroom_watts};
      return;
    }
    c_.vendors.clear();
    for (auto& [vendor, sh] : shares_) {
      VendorCapacity v = sh.v;
      if (sh.unhealthy) {
        v.unhealthy = *sh.unhealthy;
      } else if (sh.idle) {
        const std::uint32_t answering = v.busy + *sh.idle;
        v.unhealthy = v.accelerators > answering ? v.accelerators - answering : 0;
      }
      c_.vendors.emplace(vendor, v);
    }
  }

 private:
  static std::uint32_t count(double v) { return static_cast<std::uint32_t>(std::max(0.0, v)); }

  struct Share {
    VendorCapacity v;
    std::optional<std::uint32_t> idle, unhealthy;
  };
  Share& share(std::string_view vendor) {
    auto it = shares_.find(vendor);
    if (it == shares_.end()) {
      it = shares_.emplace(std::string(vendor), Share{}).first;
    }
    return it->second;
  }

  NodeCapacity& c_;
  std::map<std::string, Share, std::less<>> shares_;
  bool summary_ = false;
  std::optional<std::uint32_t> idle_, unhealthy_;
  // dcgm-exporter's per-GPU series, kept in case the summary is absent.
  std::set<std::string, std::less<>> gpus_, busy_gpus_;
  double fb_free_mib_ = 0, power_ = 0, limit_ = 0;
  std::string dcgm_model_;
};

std::string_view label_of(const platform::Labels& labels, std::string_view key) {
  for (const auto& [k, v] : labels) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

}  // namespace

std::optional<NodeCapacity> parse_capacity(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("type", "") != "report" ||
      !j.contains("node") || !j["node"].is_string() || !j.contains("metrics") ||
      !j["metrics"].is_array()) {
    return std::nullopt;
  }
  NodeCapacity c;
  c.node = j["node"].get<std::string>();
  c.seq = j.value("seq", std::uint64_t{0});
  c.time_ns = j.value("time_ns", std::uint64_t{0});
  if (j.contains("labels") && j["labels"].is_object()) {
    c.region = j["labels"].value("region", "");
    c.site = j["labels"].value("site", "");
  }
  Summary sum(c);
  for (const auto& m : j["metrics"]) {
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string() || !m.contains("value") ||
        !m["value"].is_number()) {
      continue;
    }
    const CapacityRole role = role_of(m["name"].get_ref<const std::string&>());
    if (role == CapacityRole::none) {
      continue;
    }
    const nlohmann::json* labels =
        m.contains("labels") && m["labels"].is_object() ? &m["labels"] : nullptr;
    auto label = [labels](std::string_view k) -> std::string {
      return labels != nullptr ? labels->value(std::string(k), "") : "";
    };
    sum.add(role, m["value"].get<double>(), label("gpu"), label(cm::kModelLabel),
            label(cm::kVendorLabel));
  }
  sum.finish();
  return c;
}

platform::Result<const CapacityReader::Roles*> CapacityReader::add_catalog(
    std::span<const std::uint8_t> bytes) {
  const crypto::Digest digest = crypto::sha256(bytes);
  if (auto it = catalogs_.find(digest); it != catalogs_.end()) {
    return &it->second;
  }
  auto cat = protocol::decode_catalog(bytes);
  if (!cat) {
    return platform::fail(std::errc::bad_message, "catalog: " + cat.error().context);
  }
  if (catalogs_.size() >= 4096) {
    catalogs_.clear();  // many catalogs over time: what is still named is fetched again
  }
  Roles r;
  r.series = cat->series.size();
  for (std::size_t i = 0; i < cat->series.size(); ++i) {
    const auto& family = cat->family_of(static_cast<std::uint32_t>(i));
    const CapacityRole role = role_of(family.name);
    if (role == CapacityRole::none) {
      continue;
    }
    const auto& labels = cat->series[i].labels;
    r.wanted.push_back({static_cast<std::uint32_t>(i), role, family.scale,
                        std::string(label_of(labels, "gpu")),
                        std::string(label_of(labels, cm::kModelLabel)),
                        std::string(label_of(labels, cm::kVendorLabel))});
  }
  return &catalogs_.emplace(digest, std::move(r)).first->second;
}

const CapacityReader::Roles* CapacityReader::roles(const crypto::Digest& digest) {
  if (auto it = catalogs_.find(digest); it != catalogs_.end()) {
    return &it->second;
  }
  if (!fetch_) {
    return nullptr;
  }
  auto bytes = fetch_(digest);
  if (!bytes) {
    return nullptr;
  }
  auto added = add_catalog(*bytes);
  return added && catalogs_.contains(digest) ? *added : nullptr;
}

platform::Result<std::optional<NodeCapacity>> CapacityReader::read(
    std::span<const std::uint8_t> message) {
  if (!is_stream_record(message)) {
    if (message.empty() || message[0] != '{') {
      return platform::fail(std::errc::bad_message,
                            "neither a stream record nor a JSON line (" +
                                std::to_string(message.size()) + " bytes)");
    }
    return parse_capacity(
        std::string_view(reinterpret_cast<const char*>(message.data()), message.size()));
  }
  auto rec = parse_stream_record(message);
  if (!rec) {
    return tl::unexpected(rec.error());
  }
  if (rec->kind == StreamKind::catalog) {
    if (auto r = add_catalog(rec->payload); !r) {
      return tl::unexpected(r.error());
    }
    return std::nullopt;
  }
  if (rec->kind != StreamKind::report) {
    return std::nullopt;
  }
  NodeCapacity c;
  c.node = rec->node;
  c.seq = rec->header.seq;
  c.time_ns = rec->header.time_ns;
  c.region = label_of(rec->header.node_labels, "region");
  c.site = label_of(rec->header.node_labels, "site");
  if (!rec->has_values) {
    return c;  // its values wait for a keyframe: nothing known about the accelerators
  }
  const Roles* r = roles(rec->header.catalog);
  if (r == nullptr) {
    return platform::fail(std::errc::no_such_file_or_directory,
                          "report " + std::to_string(c.seq) + " of " + c.node + " names catalog " +
                              crypto::to_hex(rec->header.catalog) + ", not in the stream");
  }
  Summary sum(c);
  auto next = r->wanted.begin();
  auto v = for_each_stream_value(
      rec->values, r->series, [&](std::size_t i, platform::Value value) {
        while (next != r->wanted.end() && next->series < i) {
          ++next;
        }
        if (next != r->wanted.end() && next->series == i) {
          sum.add(next->role, platform::to_double(value, next->scale), next->gpu, next->model,
                  next->vendor);
        }
      });
  if (!v) {
    return tl::unexpected(v.error());
  }
  sum.finish();
  return c;
}

void CapacityTable::apply(NodeCapacity c) {
  auto it = nodes_.find(c.node);
  if (it == nodes_.end()) {
    std::string id = c.node;
    nodes_.emplace(std::move(id), std::move(c));
    return;
  }
  NodeCapacity& have = it->second;
  if (c.time_ns <= have.time_ns) {
    return;  // older (a replay, or a node's clock stepping back): keep the newer
  }
  c.interval_ns = c.time_ns - have.time_ns;
  if (c.seq != have.seq + 1 && have.interval_ns != 0) {
    c.interval_ns = std::min(c.interval_ns, have.interval_ns);  // reports missing in between
  }
  have = std::move(c);
}

bool CapacityTable::stale(const NodeCapacity& c, std::uint64_t now_ns) const {
  const double interval = c.interval_ns != 0 ? static_cast<double>(c.interval_ns)
                                             : static_cast<double>(default_interval_.count());
  return now_ns > c.time_ns && static_cast<double>(now_ns - c.time_ns) > stale_after_ * interval;
}

std::string CapacityTable::node_json(const NodeCapacity& c, std::uint64_t now_ns) const {
  const bool st = stale(c, now_ns);
  nlohmann::json j = {
      {"node", c.node},
      {"region", c.region},
      {"site", c.site},
      {"model", c.model},
      {"accelerators", c.accelerators},
      {"busy", c.busy},
      {"idle", c.idle()},
      {"free_accelerators", st || c.health() == "failed" ? 0u : c.idle()},
      {"memory_free_mib", c.memory_free_bytes / (1024.0 * 1024.0)},
      {"power_headroom_watts", c.power_headroom_watts},
      {"health", c.health()},
      {"stale", st},
      {"seq", c.seq},
      {"time", rfc3339_ns(c.time_ns)},
      {"time_ns", c.time_ns},
      {"age_seconds", now_ns > c.time_ns ? static_cast<double>(now_ns - c.time_ns) / 1e9 : 0.0},
  };
  return dump(j);
}

std::string CapacityTable::answer(const CapacityQuery& q, std::uint64_t now_ns) const {
  struct Total {
    std::uint64_t nodes = 0, stale = 0, accelerators = 0, free = 0, busy = 0;
    double memory_free_mib = 0;
    nlohmann::json to_json() const {
      return {{"nodes", nodes},        {"stale_nodes", stale}, {"accelerators", accelerators},
              {"free_accelerators", free}, {"busy", busy},     {"memory_free_mib", memory_free_mib}};
    }
  };
  std::map<std::string, Total> sites, regions;
  Total all;
  std::vector<const NodeCapacity*> fit;
  // ?vendor=: each node as that vendor's share of it (a node without it is left out).
  std::vector<NodeCapacity> shares;
  if (!q.vendor.empty()) {
    shares.reserve(nodes_.size());
  }
  for (const auto& [id, whole] : nodes_) {
    const NodeCapacity* node = &whole;
    if (!q.vendor.empty()) {
      auto v = whole.vendors.find(q.vendor);
      if (v == whole.vendors.end() || v->second.accelerators == 0) {
        continue;
      }
      NodeCapacity& part = shares.emplace_back(whole);
      part.accelerators = v->second.accelerators;
      part.busy = v->second.busy;
      part.unhealthy = v->second.unhealthy;
      part.memory_free_bytes = v->second.memory_free_bytes;
      part.power_headroom_watts = v->second.power_headroom_watts;
      node = &part;
    }
    const NodeCapacity& c = *node;
    if ((!q.region.empty() && c.region != q.region) || (!q.site.empty() && c.site != q.site) ||
        (!q.model.empty() && c.model != q.model)) {
      continue;
    }
    const bool st = stale(c, now_ns);
    const bool usable = !st && c.health() != "failed";
    for (Total* t : {&sites[c.region + "/" + c.site], &regions[c.region], &all}) {
      ++t->nodes;
      t->stale += st ? 1 : 0;
      t->accelerators += c.accelerators;
      t->busy += c.busy;
      if (usable) {
        t->free += c.idle();
        t->memory_free_mib += c.memory_free_bytes / (1024.0 * 1024.0);
      }
    }
    if (usable && c.idle() >= q.min_free_gpus && c.idle() > 0 &&
        c.memory_free_bytes >= static_cast<double>(q.min_free_mem_mib) * 1024 * 1024) {
      fit.push_back(&c);
    }
  }
  // Best first: most idle accelerators, then most free memory, then the most power to spare,
  // then the freshest data.
  std::sort(fit.begin(), fit.end(), [](const NodeCapacity* a, const NodeCapacity* b) {
    if (a->idle() != b->idle()) return a->idle() > b->idle();
    if (a->memory_free_bytes != b->memory_free_bytes) return a->memory_free_bytes > b->memory_free_bytes;
    if (a->power_headroom_watts != b->power_headroom_watts)
      return a->power_headroom_watts > b->power_headroom_watts;
    if (a->time_ns != b->time_ns) return a->time_ns > b->time_ns;
    return a->node < b->node;
  });
  std::string out = "{\"nodes\":[";
  for (std::size_t i = 0; i < fit.size() && i < q.limit; ++i) {
    if (i > 0) {
      out += ',';
    }
    out += node_json(*fit[i], now_ns);
  }
  nlohmann::json s = nlohmann::json::array(), r = nlohmann::json::array();
  for (const auto& [key, t] : sites) {
    auto slash = key.find('/');
    nlohmann::json e = t.to_json();
    e["region"] = key.substr(0, slash);
    e["site"] = key.substr(slash + 1);
    s.push_back(std::move(e));
  }
  for (const auto& [key, t] : regions) {
    nlohmann::json e = t.to_json();
    e["region"] = key;
    r.push_back(std::move(e));
  }
  out += "],\"matching\":" + std::to_string(fit.size()) + ",\"sites\":" + dump(s) + ",\"regions\":" + dump(r) + ",\"total\":" + dump(all.to_json()) +
         "}\n";
  return out;
}

std::optional<std::string> CapacityTable::node(const std::string& id, std::uint64_t now_ns) const {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    return std::nullopt;
  }
  return node_json(it->second, now_ns) + "\n";
}

std::string CapacityTable::metrics(std::uint64_t now_ns) const {
  std::uint64_t free_nodes = 0, stale_nodes = 0, idle = 0, busy = 0, total = 0;
  double mem = 0;
  for (const auto& [id, c] : nodes_) {
    const bool st = stale(c, now_ns);
    stale_nodes += st ? 1 : 0;
    total += c.accelerators;
    busy += c.busy;
    if (!st && c.health() != "failed") {
      idle += c.idle();
      mem += c.memory_free_bytes;
      free_nodes += c.idle() > 0 ? 1 : 0;
    }
  }
  std::string out;
  auto gauge = [&out](const char* name, const char* help, const std::string& value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + value + "\n";
  };
  gauge("gridnode_capacity_nodes", "Nodes the view holds.", std::to_string(nodes_.size()));
  gauge("gridnode_capacity_nodes_stale", "Nodes whose data is older than three intervals.",
        std::to_string(stale_nodes));
  gauge("gridnode_capacity_nodes_free", "Fresh, healthy nodes with an idle accelerator.",
        std::to_string(free_nodes));
  gauge("gridnode_capacity_accelerators", "Accelerators on all nodes.", std::to_string(total));
  gauge("gridnode_capacity_accelerators_busy", "Accelerators running work.", std::to_string(busy));
  gauge("gridnode_capacity_accelerators_free", "Idle accelerators on fresh, healthy nodes.",
        std::to_string(idle));
  gauge("gridnode_capacity_memory_free_bytes", "Free accelerator memory on fresh, healthy nodes.",
        number(mem));
  return out;
}

namespace {

// The view: a NATS subscription feeding the table on the loop, and http::Server (the project's
// one HTTP server: keep-alive, HEAD, and its limits on hostile clients; docs/http.md).
class View {
 public:
  View(asio::io_context& io, const CapacityOptions& o)
      : io_(io), o_(o), table_(o.stale_after_intervals, o.default_interval),
        signals_(io, SIGTERM, SIGINT),
        // A catalog by its subject, on the NATS delivery thread: when a report comes before the
        // last message of its catalog's subject (another node with the same catalog published
        // it later), or the catalog was published before the stream's oldest message.
        reader_([this](const crypto::Digest& d) {
          return fetch_catalog(client_->js(), o_.stream, d);
        }) {}
  ~View() {
    // The subscription first: no message callback runs after it is gone.
    if (sub_ != nullptr) {
      natsSubscription_Unsubscribe(sub_);
      natsSubscription_Destroy(sub_);
    }
    client_.reset();
  }

  platform::Result<void> start() {
    http::ServerOptions web;
    web.listen = {o_.listen};
    web.component = "capacity";
    auto server = http::Server::make(io_, std::move(web), [this](const http::Request& req,
                                                                http::Response& resp) {
      route(req, resp);
    });
    if (!server) {
      return tl::unexpected(server.error());
    }
    http_ = std::move(*server);
    auto client = NatsClient::connect(o_.from, "gridnode-capacity", o_.timeout);
    if (!client) {
      return tl::unexpected(client.error());
    }
    client_ = std::move(*client);
    // Each node's last record first (its subject is its own), then everything new: the view is
    // whole as soon as the backlog is read, whenever it starts.
    jsOptions jo;
    jsOptions_Init(&jo);
    jsSubOptions so = ordered_consumer(o_.stream, js_DeliverLastPerSubject);
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string subjects = std::string(kSubjectPrefix) + ".>";
    natsStatus s = js_Subscribe(&sub_, client_->js(), subjects.c_str(), &View::on_msg_thread, this,
                                &jo, &so, &jerr);
    if (s != NATS_OK) {
      return tl::unexpected(nats_error(s, jerr, "subscription to " + o_.stream));
    }
    signals_.async_wait([this](const std::error_code& e, int) {
      if (!e) {
        http_->close();
        io_.stop();
      }
    });
    return {};
  }

 private:
  // On a NATS thread: parse there, apply on the loop.
  static void on_msg_thread(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<View*>(closure);
    const std::span<const std::uint8_t> data(
        reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(msg)),
        static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    auto read = self->reader_.read(data);
    const bool unreadable = !read;
    if (!read && self->unreadable_logged_.exchange(true) == false) {
      platform::log(Level::warning, "capacity",
                    LogLine("message skipped").kv("err", read.error().message()));
    }
    std::optional<NodeCapacity> c = read ? std::move(*read) : std::nullopt;
    std::uint64_t pending = 0;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      pending = meta->NumPending;
    }
    jsMsgMetaData_Destroy(meta);
    natsMsg_Destroy(msg);
    asio::post(self->io_, [self, c = std::move(c), pending, unreadable]() mutable {
      ++self->delivered_;
      self->unreadable_ += unreadable ? 1 : 0;
      self->pending_ = pending;
      if (c) {
        const std::uint64_t now = now_unix_ns();
        if (now > c->time_ns) {
          self->freshness_.add(static_cast<double>(now - c->time_ns) / 1e9);
        }
        self->table_.apply(std::move(*c));
      }
    });
  }

  static void reply(http::Response& resp, int status, std::string type, std::string body) {
    resp.status = status;
    resp.content_type = std::move(type);
    resp.body = std::move(body);
  }

  // GET /v1/capacity?region=east&min_free_gpus=2, /v1/nodes/<id>, /metrics.
  void route(const http::Request& req, http::Response& resp) {
    const std::string& path = req.path;  // percent-decoded by the server
    std::map<std::string, std::string> params;
    for (auto& [k, v] : req.params()) {
      params[k] = std::move(v);  // a repeated name: the last one counts
    }
    const std::uint64_t now = now_unix_ns();
    if (path == "/v1/capacity") {
      CapacityQuery q;
      q.region = params["region"];
      q.site = params["site"];
      q.model = params["model"];
      q.vendor = params["vendor"];
      if (!params["min_free_mem_mib"].empty()) {
        auto v = platform::parse_uint64(params["min_free_mem_mib"]);
        if (!v) {
          return reply(resp, 400, "text/plain; charset=utf-8", "min_free_mem_mib: a number expected\n");
        }
        q.min_free_mem_mib = *v;
      }
      if (!params["limit"].empty()) {
        auto v = platform::parse_uint64(params["limit"]);
        if (!v || *v > 1'000'000) {
          return reply(resp, 400, "text/plain; charset=utf-8", "limit: a number expected\n");
        }
        q.limit = static_cast<std::size_t>(*v);
      }
      if (!params["min_free_gpus"].empty()) {
        auto v = platform::parse_uint64(params["min_free_gpus"]);
        if (!v || *v > 1'000'000) {
          return reply(resp, 400, "text/plain; charset=utf-8", "min_free_gpus: a number expected\n");
        }
        q.min_free_gpus = static_cast<std::uint32_t>(*v);
      }
      return reply(resp, 200, "application/json", table_.answer(q, now));
    }
    if (path.starts_with("/v1/nodes/")) {
      auto j = table_.node(path.substr(10), now);
      if (!j) {
        return reply(resp, 404, "application/json", "{\"error\":\"no such node\"}\n");
      }
      return reply(resp, 200, "application/json", *j);
    }
    if (path == "/metrics") {
      std::string m = table_.metrics(now);
      m += "# HELP gridnode_capacity_consumer_pending_messages Stream messages not yet read by the view (its lag).\n"
           "# TYPE gridnode_capacity_consumer_pending_messages gauge\n"
           "gridnode_capacity_consumer_pending_messages " + std::to_string(pending_) + "\n";
      m += "# HELP gridnode_capacity_consumer_delivered_total Stream messages the view has read.\n"
           "# TYPE gridnode_capacity_consumer_delivered_total counter\n"
           "gridnode_capacity_consumer_delivered_total " + std::to_string(delivered_) + "\n";
      m += "# HELP gridnode_capacity_consumer_unreadable_total Stream messages the view could not read (malformed, or naming a catalog gone from the stream).\n"
           "# TYPE gridnode_capacity_consumer_unreadable_total counter\n"
           "gridnode_capacity_consumer_unreadable_total " + std::to_string(unreadable_) + "\n";
      m += "# HELP gridnode_capacity_freshness_seconds From a node's sampling to the view holding it (last 16384 reports).\n"
           "# TYPE gridnode_capacity_freshness_seconds summary\n";
      for (const char* q : {"0.5", "0.9", "0.99"}) {
        m += std::string("gridnode_capacity_freshness_seconds{quantile=\"") + q + "\"} " +
             number(freshness_.quantile(std::strtod(q, nullptr))) + "\n";
      }
      m += "gridnode_capacity_freshness_seconds_count " + std::to_string(freshness_.size()) + "\n";
            const http::ServerStats& st = http_->stats();
      auto counter = [&m](const char* name, const char* help, std::uint64_t v) {
        m += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" +
             name + " " + std::to_string(v) + "\n";
      };
      counter("gridnode_capacity_http_requests_total", "HTTP requests answered by the view.",
              st.requests);
      counter("gridnode_capacity_http_bad_requests_total",
              "HTTP requests refused: malformed, too large, too slow, or another method.",
              st.bad_requests);
      counter("gridnode_capacity_http_refused_connections_total",
              "HTTP connections closed at once: too many open.", st.refused_connections);
      return reply(resp, 200, "text/plain; version=0.0.4", std::move(m));
    }
    return reply(resp, 404, "text/plain; charset=utf-8", "not found: GET /v1/capacity, /v1/nodes/<id>, /metrics\n");
  }

  asio::io_context& io_;
  CapacityOptions o_;
  CapacityTable table_;
  std::unique_ptr<http::Server> http_;
  asio::signal_set signals_;
  std::unique_ptr<NatsClient> client_;
  natsSubscription* sub_ = nullptr;
  std::uint64_t delivered_ = 0;
  std::uint64_t pending_ = 0;
  std::uint64_t unreadable_ = 0;
  Window freshness_;
  CapacityReader reader_;                       // the NATS delivery thread's
  std::atomic<bool> unreadable_logged_{false};  // the first unreadable message is logged
};

}  // namespace

int capacity(const CapacityOptions& o) {
  asio::io_context io{1};
  View view(io, o);
  if (auto r = view.start(); !r) {
    std::fprintf(stderr, "gridnode-collector capacity: %s\n", r.error().message().c_str());
    return 2;
  }
  platform::log(Level::notice, "capacity", LogLine("listening").kv("on", o.listen).kv("from", o.from));
  io.run();
  return 0;
}

}  // namespace gridnode::collector
