// gridnode-sim: many node identities at once, each a real mutual-TLS session to a real
// `gridnode-collector serve`, speaking the real uplink session (docs/protocol.md §6a) through
// the agent's own Uplink, with reports built and signed as the agent builds and signs them.
// What it measures (docs/simulator.md): reports acknowledged per second, the agent's view of
// publish-acknowledgement latency (sampling time to `ack`), and the CPU seconds that given
// processes (the collectors, nats-server) spent meanwhile, so that reports per collector CPU
// second follow. bench/grid_sim.sh starts the grid around it.
//
// One io_context on one thread drives every node: signing and TLS for a thousand nodes at a 5 s
// interval take about a third of a core here (more while handshakes are retried), and one loop
// keeps the Uplink's loop-thread contract without a strand or a mutex. The nodes' identities are
// `gridnode-collector pki`'s (DIR/nodes/<id>.crt and .key), made once and cached by the driver
// script.
// clang-format off
#include <cstddef>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
// clang-format on
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gridnode/collector/capacity.hpp"
#include "gridnode/agent/report_builder.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/agent/uplink.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/x509.hpp"
#include "gridnode/drivers/registry.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace cm = collector::capacity_metrics;

std::uint64_t unix_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

struct Options {
  std::vector<std::string> collectors;  // HOST:PORT; node i streams to collectors[i % size]
  std::string pki;                      // gridnode-collector pki init's directory
  std::size_t nodes = 1000;
  std::string prefix = "sim";  // node ids: sim000001 …
  double interval_s = 5;
  double duration_s = 30;
  double ramp_per_s = 25;       // new connections per second
  double connect_wait_s = 120;  // the window starts when all are connected, or after this
  double drain_s = 30;          // after the window: how long to wait for the last acks
  std::size_t regions = 8;
  std::size_t sites = 64;
  std::uint32_t gpus = 8;
  std::uint32_t keyframe_interval = 60;
  std::string fixtures = GRIDNODE_FIXTURES_DIR;
  std::string nvml_library = GRIDNODE_FAKE_NVML;
  std::string dcmi_library = GRIDNODE_FAKE_DCMI;
  // The share of the nodes that are Huawei Ascend hosts (the fake libdcmi.so's NPUs, under
  // npu-exporter's names, in the summary as vendor="huawei"); the others are NVIDIA hosts.
  double ascend_share = 0;
  std::vector<std::string> watch;  // NAME=PID: CPU seconds spent in the window
  std::string per_node;            // FILE: "node last_seq acked_seq" per line
};

// ---------------------------------------------------------------------------------------------
// The host every simulated node pretends to be: the real drivers' sweep of the fixture trees
// (node_exporter's hwmon, thermal, powercap and procfs series) and of the fake NVML with
// `gpus` H100s (dcgm-exporter's series and the accelerator summary the capacity view reads), or
// of the fake DCMI with `gpus` Ascend 910B3s (npu-exporter's series, vendor="huawei"), merged
// into one catalog by the agent's ReportBuilder. Each node then moves its own copy of the values.

struct HostTemplate {
  protocol::EncodedCatalog catalog;
  std::vector<protocol::Slot> values;
  std::uint32_t total = 0, busy = 0, idle = 0, memory_free = 0, headroom = 0;  // series
  std::vector<std::uint32_t> gpu_util;    // DCGM_FI_DEV_GPU_UTIL (npu_chip_info_utilization) each
  std::uint64_t memory_free_per_gpu = 0;  // bytes, an idle GPU's
  std::int64_t headroom_per_gpu = 0;      // the summary's raw unit (mW), an idle GPU's
};

std::string scenario_text(std::uint32_t gpus) {
  std::string s = "gpus " + std::to_string(gpus) +
                  "\ndriver_version 535.104.05\nname * NVIDIA H100 80GB HBM3\n"
                  "value * gpu_temp 41\nvalue * mem_temp 38\nvalue * power_mw 69875\n"
                  "value * energy_mj 123456789012\nvalue * power_limit_mw 700000\n"
                  "value * sm_clock 1980\nvalue * mem_clock 2619\nvalue * util_gpu 0\n"
                  "value * util_mem 0\nvalue * enc 0\nvalue * dec 0\n"
                  "value * fb_total 85520809984\nvalue * fb_reserved 666894336\n"
                  "value * fb_used 4194304\nvalue * fb_free 84849721344\nvalue * pcie_replay 0\n"
                  "value * fan 30\nvalue * pstate 0\n";
  for (std::uint32_t g = 0; g < gpus; ++g) {
    char line[96];
    std::snprintf(line, sizeof line, "uuid %u GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f4050%02u\n", g, g);
    s += line;
    std::snprintf(line, sizeof line, "bus %u 00000000:%02X:00.0\nminor %u %u\n", g, 0x17 + g, g, g);
    s += line;
  }
  return s;
}

std::optional<std::uint32_t> find_series(const platform::Catalog& c, std::string_view family,
                                         std::string_view label = {}, std::string_view value = {}) {
  for (std::uint32_t i = 0; i < c.series.size(); ++i) {
    if (c.family_of(i).name != family) {
      continue;
    }
    if (label.empty()) {
      return i;
    }
    for (const auto& [k, v] : c.series[i].labels) {
      if (k == label && v == value) {
        return i;
      }
    }
  }
  return std::nullopt;
}

std::string ascend_scenario_text(std::uint32_t npus) {
  std::string s = "cards " + std::to_string(npus) +
                  " 1\nname * Ascend 910B3 V1\nvalue * health 0\nvalue * temperature 45\n"
                  "value * power 920\nvalue * voltage 1250\nvalue * util 0\n"
                  "value * aicore_freq 1800\nvalue * hbm_total 65536\nvalue * hbm_used 3000\n"
                  "value * mem_total 32768\nvalue * mem_available 30000\nvalue * network 0\n";
  return s;
}

[[nodiscard]] platform::Result<HostTemplate> make_host_template(const Options& o,
                                                                const std::string& work,
                                                                bool ascend = false) {
  const std::string scenario = work + (ascend ? "/dcmi.scenario" : "/nvml.scenario");
  if (auto r = platform::write_file_atomic(
          scenario, ascend ? ascend_scenario_text(o.gpus) : scenario_text(o.gpus), 0644);
      !r) {
    return tl::unexpected(r.error());
  }
  // The fake library reads its scenario at nvmlInit_v2 (dcmi_init), in the first sweep below.
  ::setenv(ascend ? "FAKE_DCMI_SCENARIO" : "FAKE_NVML_SCENARIO", scenario.c_str(), 1);
  struct Source {
    std::string driver, sysfs, procfs;
  };
  const std::string f = o.fixtures;
  const Source sources[] = {{"procfs", f + "/procfs/basic/sys", f + "/procfs/basic/proc"},
                            {"hwmon", f + "/hwmon/nct6775/sys", f + "/procfs/basic/proc"},
                            {"thermal", f + "/thermal/basic/sys", f + "/procfs/basic/proc"},
                            {"powercap", f + "/powercap/basic/sys", f + "/procfs/basic/proc"},
                            {ascend ? "ascend" : "nvml", f + "/procfs/basic/sys",
                             f + "/procfs/basic/proc"}};
  std::vector<agent::DriverSlot> slots;
  for (const auto& s : sources) {
    drivers::DriverContext d;
    d.roots.sysfs = s.sysfs;
    d.roots.procfs = s.procfs;
    auto made = drivers::make_drivers(
        d, {s.driver},
        {{"nvml", {{"library", "--nvml-library", o.nvml_library}}},
         {"ascend", {{"library", "--dcmi-library", o.dcmi_library}}}});
    if (!made) {
      return tl::unexpected(made.error());
    }
    auto& slot = slots.emplace_back();
    slot.driver = std::move(made->front());
    if (auto r = slot.driver->sweep(slot.front); !r) {
      return platform::fail(r.error().code,
                            s.driver + " sweep of " + s.sysfs + ": " + r.error().message());
    }
    slot.state = agent::DriverState::up;
  }
  agent::ReportBuilder builder(o.keyframe_interval);
  protocol::ReportHeader header;
  header.node_id = "template";
  header.seq = 1;
  protocol::Bytes message;
  builder.build(slots, header, message);
  HostTemplate t;
  t.catalog = builder.catalog();
  t.values = builder.values();
  const auto& c = t.catalog.catalog;
  const char* vendor = ascend ? "huawei" : "nvidia";
  auto total = find_series(c, cm::kAccelerators, "vendor", vendor);
  auto busy = find_series(c, cm::kBusy, "vendor", vendor);
  auto idle = find_series(c, cm::kIdle, "vendor", vendor);
  auto mem = find_series(c, cm::kMemoryFree, "vendor", vendor);
  auto headroom = find_series(c, cm::kPowerHeadroom, "vendor", vendor);
  if (!total || !busy || !idle || !mem || !headroom) {
    return platform::fail(std::errc::no_such_file_or_directory,
                          ascend ? "the ascend driver gave no accelerator summary: is " +
                                       o.dcmi_library +
                                       " the fake libdcmi.so (tests/fakes, built with the tests)?"
                                 : "the nvml driver gave no accelerator summary: is " +
                                       o.nvml_library +
                                       " the fake libnvidia-ml.so.1 (tests/fakes, built with "
                                       "the tests)?");
  }
  t.total = *total;
  t.busy = *busy;
  t.idle = *idle;
  t.memory_free = *mem;
  t.headroom = *headroom;
  for (std::uint32_t g = 0; g < o.gpus; ++g) {
    if (auto s = ascend ? find_series(c, "npu_chip_info_utilization", "id", std::to_string(g))
                        : find_series(c, cm::kDcgmUtil, "gpu", std::to_string(g))) {
      t.gpu_util.push_back(*s);
    }
  }
  t.memory_free_per_gpu = t.values[t.memory_free].value.bits / std::max<std::uint32_t>(1, o.gpus);
  t.headroom_per_gpu = t.values[t.headroom].value.as_int64() / std::max<std::uint32_t>(1, o.gpus);
  return t;
}

// ---------------------------------------------------------------------------------------------

// CPU seconds (user + system) a process has used, from /proc/<pid>/stat.
std::optional<double> cpu_seconds(int pid) {
  std::string text;
  if (!platform::read_file("/proc/" + std::to_string(pid) + "/stat", text, 4096)) {
    return std::nullopt;
  }
  // The command name may hold blanks and parentheses: fields are counted after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(text.c_str() + close + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    return std::nullopt;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) {
    return 0;
  }
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

class Sim;

// One simulated agent: its values, encoder, signing key and chain, the reports not yet
// acknowledged (its spool, in memory), and the agent's real Uplink streaming them.
class SimNode final : public agent::UplinkSource {
 public:
  SimNode(Sim& sim, std::size_t index, std::string id, crypto::Certificate cert,
          crypto::PrivateKey key);

  [[nodiscard]] platform::Result<void> start();
  void stop();
  bool connected() const { return uplink_ && uplink_->connected(); }
  bool drained() const { return acked_ == seq_; }
  const std::string& id() const { return id_; }
  std::uint64_t last_seq() const { return seq_; }
  std::uint64_t acked_seq() const { return acked_; }

  platform::Result<void> read(std::uint64_t after_seq, std::size_t max_bytes,
                              std::vector<agent::OutRecord>& out) override;
  void acknowledge(std::uint64_t seq) override;
  std::uint64_t first_unacked() const override { return acked_ + 1; }
  std::uint64_t newest() const override { return seq_; }

 private:
  struct Pending {
    std::uint64_t seq;
    std::uint64_t time_ns;
    protocol::Bytes envelope;
  };
  void do_wait();
  void on_tick();
  void move_values();

  Sim& sim_;
  std::size_t index_;
  std::string id_;
  crypto::Certificate cert_;
  crypto::PrivateKey key_;
  platform::Labels labels_;
  protocol::BootId boot_{};
  protocol::ReportEncoder encoder_;
  const HostTemplate& host_;  // NVIDIA's or Ascend's (Sim::host_for)
  std::vector<protocol::Slot> values_;
  std::mt19937_64 rng_;
  std::uint32_t busy_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t acked_ = 0;
  crypto::Digest prev_{};
  std::deque<Pending> pending_;
  bool streaming_ = false;  // connected once: from then on it reports (and spools) every round
  bool stopped_ = false;
  asio::steady_timer timer_;
  std::unique_ptr<agent::Uplink> uplink_;  // last: it refers to *this
};

class Sim {
 public:
  Sim(asio::io_context& io, Options o, HostTemplate t, std::optional<HostTemplate> ascend,
      std::unique_ptr<crypto::Random> random, crypto::Certificate ca)
      : io_(io),
        options_(std::move(o)),
        host_(std::move(t)),
        ascend_host_(std::move(ascend)),
        random_(std::move(random)),
        ca_(std::move(ca)),
        ticker_(io),
        signals_(io, SIGINT, SIGTERM) {}

  [[nodiscard]] platform::Result<void> load_nodes();
  void start();
  nlohmann::json summary() const;

  // For the nodes.
  asio::io_context& io() { return io_; }
  const Options& options() const { return options_; }
  const HostTemplate& host() const { return host_; }
  // Node `index`'s host: Ascend for an ascend_share of the nodes, spread evenly (0.5: every
  // other node, sim000002, sim000004, …).
  const HostTemplate& host_for(std::size_t index) const {
    const double share = options_.ascend_share;
    const auto before = static_cast<std::uint64_t>(static_cast<double>(index) * share);
    const auto after = static_cast<std::uint64_t>(static_cast<double>(index + 1) * share);
    return ascend_host_ && after > before ? *ascend_host_ : host_;
  }
  crypto::Random& random() { return *random_; }
  const crypto::Certificate& ca() const { return ca_; }
  bool generating() const { return phase_ == Phase::ramp || phase_ == Phase::window; }
  void on_report() {
    ++generated_;
    if (phase_ == Phase::window) {
      ++generated_in_window_;
    }
  }
  void on_acked(std::uint64_t time_ns, std::uint64_t now_ns) {
    ++acked_;
    if (phase_ == Phase::window) {
      ++acked_in_window_;
    }
    // Latency of the reports sampled inside the window, whenever their ack came.
    if (time_ns >= window_start_ns_ && (window_end_ns_ == 0 || time_ns < window_end_ns_)) {
      latency_ms_.push_back(static_cast<double>(now_ns - time_ns) / 1e6);
    }
  }

 private:
  enum class Phase : std::uint8_t { ramp, window, drain, done };
  void do_tick();
  void begin_window();
  void end_window();
  void finish();
  std::size_t count_connected() const;
  std::map<std::string, double> read_watched() const;

  asio::io_context& io_;
  Options options_;
  HostTemplate host_;
  std::optional<HostTemplate> ascend_host_;
  std::unique_ptr<crypto::Random> random_;
  crypto::Certificate ca_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  asio::steady_timer ticker_;
  asio::signal_set signals_;
  Phase phase_ = Phase::ramp;
  Clock::time_point started_{};
  Clock::time_point window_started_{};
  Clock::time_point window_ended_{};
  Clock::time_point last_progress_{};
  std::uint64_t window_start_ns_ = ~std::uint64_t{0};
  std::uint64_t window_end_ns_ = 0;
  std::size_t launched_ = 0;
  std::size_t connected_at_window_ = 0;
  std::uint64_t generated_ = 0, generated_in_window_ = 0, acked_ = 0, acked_in_window_ = 0;
  std::vector<double> latency_ms_;
  std::map<std::string, double> cpu_start_, cpu_end_;
  double connect_seconds_ = 0;
};

SimNode::SimNode(Sim& sim, std::size_t index, std::string id, crypto::Certificate cert,
                 crypto::PrivateKey key)
    : sim_(sim),
      index_(index),
      id_(std::move(id)),
      cert_(std::move(cert)),
      key_(std::move(key)),
      encoder_(sim.options().keyframe_interval),
      host_(sim.host_for(index)),
      values_(host_.values),
      rng_(index + 1),
      timer_(sim.io()) {
  const auto& o = sim.options();
  labels_ = {{"rack", "k" + std::to_string(index % 40)},
             {"region", "r" + std::to_string(index % o.regions)},
             {"site", "s" + std::to_string(index % o.sites)}};
  for (auto& b : boot_) {
    b = static_cast<std::uint8_t>(rng_());
  }
  busy_ = static_cast<std::uint32_t>(rng_() % (o.gpus + 1));
}

platform::Result<void> SimNode::start() {
  const auto& o = sim_.options();
  agent::UplinkOptions u{.endpoints = {o.collectors[index_ % o.collectors.size()]},
                         .ca = sim_.ca(),
                         .cert = cert_,
                         .key = key_,
                         .pinned_server_key = std::nullopt};
  uplink_ = std::make_unique<agent::Uplink>(sim_.io(), std::move(u), id_, *this);
  if (auto r = uplink_->start(); !r) {
    return r;
  }
  // The first round falls anywhere in the first interval, so the rounds of all nodes spread.
  std::uniform_real_distribution<double> phase(0, o.interval_s);
  timer_.expires_after(
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(phase(rng_))));
  do_wait();
  return {};
}

void SimNode::stop() {
  // A round whose timer has already fired is queued with success, not aborted: the flag ends it.
  stopped_ = true;
  timer_.cancel();
  if (uplink_) {
    uplink_->stop();
  }
}

void SimNode::do_wait() {
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) {
      return;  // operation_aborted: stopping
    }
    on_tick();
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(sim_.options().interval_s));
    auto next = timer_.expiry() + interval;
    // More than a period late (a loaded machine): skip to the next slot, no burst.
    while (next < Clock::now()) {
      next += interval;
    }
    timer_.expires_at(next);
    do_wait();
  });
}

// The values of one sampling round: counters grow, a few gauges wander, and the accelerators'
// work changes (a job starts or ends), so the capacity view has news to show.
void SimNode::move_values() {
  const auto& h = host_;
  const auto& c = h.catalog.catalog;
  for (std::size_t i = 0; i < values_.size(); ++i) {
    auto& v = values_[i].value;
    if (c.family_of(static_cast<std::uint32_t>(i)).type == platform::MetricType::counter) {
      v.bits += rng_() % 1000;
    } else if (rng_() % 8 == 0 && v.bits > 2 && v.bits < (std::uint64_t{1} << 62)) {
      v.bits += rng_() % 2 ? 1 : -1ull;
    }
  }
  const std::uint32_t gpus = sim_.options().gpus;
  if (rng_() % 4 == 0) {
    busy_ = static_cast<std::uint32_t>(rng_() % (gpus + 1));
  }
  const std::uint32_t idle = gpus - busy_;
  values_[h.total].value = platform::Value::of_signed(gpus);  // undo the wandering above
  values_[h.busy].value = platform::Value::of_signed(busy_);
  values_[h.idle].value = platform::Value::of_signed(idle);
  // A busy GPU holds most of its memory and draws most of its power.
  values_[h.memory_free].value = platform::Value::of_unsigned(idle * h.memory_free_per_gpu +
                                                              busy_ * (h.memory_free_per_gpu / 8));
  values_[h.headroom].value =
      platform::Value::of_signed(idle * h.headroom_per_gpu + busy_ * (h.headroom_per_gpu / 10));
  for (std::uint32_t g = 0; g < h.gpu_util.size(); ++g) {
    values_[h.gpu_util[g]].value = platform::Value::of_unsigned(g < busy_ ? 90 + rng_() % 10 : 0);
  }
}

void SimNode::on_tick() {
  if (!streaming_) {
    streaming_ = connected();
  }
  if (!streaming_ || !sim_.generating()) {
    return;
  }
  move_values();
  protocol::ReportHeader h;
  h.node_id = id_;
  h.node_labels = labels_;
  h.boot_id = boot_;
  h.seq = seq_ + 1;
  h.time_ns = unix_ns();
  h.prev = prev_;
  protocol::Bytes msg;
  encoder_.encode(host_.catalog, h, {}, values_, msg);
  auto digest = protocol::sign_envelope(msg, key_, sim_.random());
  if (!digest) {
    platform::log(
        platform::Level::err, "sim",
        platform::LogLine("cannot sign").kv("node", id_).kv("err", digest.error().message()));
    return;
  }
  prev_ = *digest;
  seq_ = h.seq;
  pending_.push_back({seq_, h.time_ns, std::move(msg)});
  sim_.on_report();
  uplink_->wake();
}

platform::Result<void> SimNode::read(std::uint64_t after_seq, std::size_t max_bytes,
                                     std::vector<agent::OutRecord>& out) {
  // The catalog in force first, as the spool gives it; the uplink sends it once per session.
  out.push_back({protocol::FrameKind::catalog, after_seq + 1, host_.catalog.bytes});
  std::size_t bytes = 0;
  for (const auto& p : pending_) {
    if (p.seq <= after_seq) {
      continue;
    }
    if (bytes > 0 && bytes + p.envelope.size() > max_bytes) {
      break;
    }
    out.push_back({protocol::FrameKind::report, p.seq, p.envelope});
    bytes += p.envelope.size();
  }
  return {};
}

void SimNode::acknowledge(std::uint64_t seq) {
  const std::uint64_t now = unix_ns();
  while (!pending_.empty() && pending_.front().seq <= seq) {
    sim_.on_acked(pending_.front().time_ns, now);
    pending_.pop_front();
  }
  acked_ = std::max(acked_, std::min(seq, seq_));
}

platform::Result<void> Sim::load_nodes() {
  for (std::size_t i = 0; i < options_.nodes; ++i) {
    char id[64];
    std::snprintf(id, sizeof id, "%s%06zu", options_.prefix.c_str(), i + 1);
    const std::string base = options_.pki + "/nodes/" + id;
    auto cert = crypto::Certificate::load_file(base + ".crt");
    if (!cert) {
      return platform::fail(cert.error().code, cert.error().message() +
                                                   " (make the identities with `gridnode-collector "
                                                   "pki init --nodes`)");
    }
    auto key = crypto::load_private_key_file(base + ".key");
    if (!key) {
      return tl::unexpected(key.error());
    }
    nodes_.push_back(std::make_unique<SimNode>(*this, i, id, std::move(*cert), std::move(*key)));
  }
  latency_ms_.reserve(static_cast<std::size_t>(static_cast<double>(options_.nodes) *
                                               (options_.duration_s / options_.interval_s + 2)));
  return {};
}

void Sim::start() {
  started_ = Clock::now();
  last_progress_ = started_;
  signals_.async_wait([this](const std::error_code& ec, int) {
    if (!ec) {
      finish();
    }
  });
  do_tick();
}

std::size_t Sim::count_connected() const {
  return static_cast<std::size_t>(
      std::count_if(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->connected(); }));
}

std::map<std::string, double> Sim::read_watched() const {
  std::map<std::string, double> out;
  // The simulator's own share of the machine (its nodes' signing and TLS), beside the grid's.
  out["sim"] = cpu_seconds(static_cast<int>(::getpid())).value_or(-1);
  for (const auto& w : options_.watch) {
    auto eq = w.find('=');
    auto cpu = cpu_seconds(std::atoi(w.c_str() + eq + 1));
    out[w.substr(0, eq)] = cpu.value_or(-1);
  }
  return out;
}

// Every 20 ms: start the next connections at the ramp's pace, move from phase to phase, and
// say how far it got every 5 s.
void Sim::do_tick() {
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  if (phase_ == Phase::ramp) {
    const auto due =
        std::min(options_.nodes, static_cast<std::size_t>(elapsed * options_.ramp_per_s) + 1);
    for (; launched_ < due; ++launched_) {
      if (auto r = nodes_[launched_]->start(); !r) {
        platform::log(platform::Level::err, "sim",
                      platform::LogLine("cannot start a node")
                          .kv("node", nodes_[launched_]->id())
                          .kv("err", r.error().message()));
      }
    }
    const std::size_t connected = count_connected();
    if (connected == options_.nodes ||
        (launched_ == options_.nodes && elapsed > options_.connect_wait_s)) {
      connect_seconds_ = elapsed;
      connected_at_window_ = connected;
      begin_window();
    }
  } else if (phase_ == Phase::window &&
             std::chrono::duration<double>(now - window_started_).count() >= options_.duration_s) {
    end_window();
  } else if (phase_ == Phase::drain) {
    const bool drained =
        std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->drained(); });
    if (drained || std::chrono::duration<double>(now - window_ended_).count() > options_.drain_s) {
      finish();
      return;
    }
  }
  if (now - last_progress_ >= std::chrono::seconds(5)) {
    last_progress_ = now;
    std::fprintf(stderr, "sim: %.0f s, %zu/%zu connected, %llu reports made, %llu acked\n", elapsed,
                 count_connected(), options_.nodes, static_cast<unsigned long long>(generated_),
                 static_cast<unsigned long long>(acked_));
  }
  ticker_.expires_after(std::chrono::milliseconds(20));
  ticker_.async_wait([this](const std::error_code& ec) {
    if (!ec) {
      do_tick();
    }
  });
}

void Sim::begin_window() {
  phase_ = Phase::window;
  window_started_ = Clock::now();
  window_start_ns_ = unix_ns();
  cpu_start_ = read_watched();
  std::fprintf(stderr, "sim: %zu/%zu connected after %.1f s; measuring for %.0f s\n",
               connected_at_window_, options_.nodes, connect_seconds_, options_.duration_s);
}

void Sim::end_window() {
  phase_ = Phase::drain;
  window_ended_ = Clock::now();
  window_end_ns_ = unix_ns();
  cpu_end_ = read_watched();
}

void Sim::finish() {
  if (phase_ == Phase::window) {
    end_window();
  }
  phase_ = Phase::done;
  ticker_.cancel();
  // Back to the default dispositions: a second SIGTERM ends a run that does not wind down.
  std::error_code ignored;
  signals_.clear(ignored);
  signals_.cancel(ignored);
  for (auto& n : nodes_) {
    n->stop();
  }
}

nlohmann::json Sim::summary() const {
  const double window = std::chrono::duration<double>(window_ended_ - window_started_).count();
  auto lat = latency_ms_;
  std::size_t drained = 0;
  for (const auto& n : nodes_) {
    drained += n->drained() ? 1 : 0;
  }
  nlohmann::json cpu = nlohmann::json::object();
  double total_cpu = 0;
  for (const auto& [name, start] : cpu_start_) {
    auto end = cpu_end_.find(name);
    const double used =
        end == cpu_end_.end() || start < 0 || end->second < 0 ? -1 : end->second - start;
    cpu[name] = used;
    if (name.rfind("collector", 0) == 0 && used > 0) {
      total_cpu += used;
    }
  }
  const double acked = static_cast<double>(acked_in_window_);
  nlohmann::json j = {{"nodes", options_.nodes},
                      {"collectors", options_.collectors.size()},
                      {"interval_s", options_.interval_s},
                      {"series_per_report", host_.catalog.catalog.series.size()},
                      {"connected", connected_at_window_},
                      {"connect_seconds", connect_seconds_},
                      {"window_seconds", window},
                      {"reports_made", generated_},
                      {"reports_acked", acked_},
                      {"reports_made_in_window", generated_in_window_},
                      {"reports_acked_in_window", acked_in_window_},
                      {"reports_per_second", window > 0 ? acked / window : 0},
                      {"nodes_all_acked", drained},
                      {"all_acked", drained == options_.nodes && acked_ == generated_},
                      {"ack_latency_ms",
                       {{"count", lat.size()},
                        {"p50", quantile(lat, 0.5)},
                        {"p90", quantile(lat, 0.9)},
                        {"p99", quantile(lat, 0.99)},
                        {"max", lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end())}}},
                      {"cpu_seconds", cpu},
                      {"reports_per_collector_cpu_second", total_cpu > 0 ? acked / total_cpu : 0}};
  if (!options_.per_node.empty()) {
    std::ofstream f(options_.per_node);
    for (const auto& n : nodes_) {
      f << n->id() << ' ' << n->last_seq() << ' ' << n->acked_seq() << '\n';
    }
  }
  return j;
}

int run(const Options& o) {
  // A thousand sessions and more: lift the soft descriptor limit to the hard one.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < o.nodes + 64) {
    std::fprintf(stderr, "gridnode-sim: %zu nodes need %zu descriptors, the limit is %llu\n",
                 o.nodes, o.nodes + 64, static_cast<unsigned long long>(lim.rlim_cur));
    return 2;
  }
  char work_template[] = "/tmp/gn-sim-XXXXXX";
  const char* work = ::mkdtemp(work_template);
  if (work == nullptr) {
    std::perror("gridnode-sim: mkdtemp");
    return 1;
  }
  auto host = make_host_template(o, work);
  std::optional<HostTemplate> ascend;
  platform::Result<void> ascend_made;
  if (host && o.ascend_share > 0) {
    if (auto a = make_host_template(o, work, true)) {
      ascend = std::move(*a);
    } else {
      ascend_made = tl::unexpected(a.error());
    }
  }
  std::remove((std::string(work) + "/nvml.scenario").c_str());
  std::remove((std::string(work) + "/dcmi.scenario").c_str());
  ::rmdir(work);
  if (!host || !ascend_made) {
    std::fprintf(stderr, "gridnode-sim: %s\n",
                 (!host ? host.error() : ascend_made.error()).message().c_str());
    return 1;
  }
  auto random = crypto::Random::create("gridnode-sim");
  auto ca = crypto::Certificate::load_file(o.pki + "/ca.crt");
  if (!random || !ca) {
    std::fprintf(stderr, "gridnode-sim: %s\n",
                 (!random ? random.error() : ca.error()).message().c_str());
    return 1;
  }
  asio::io_context io{1};
  Sim sim(io, o, std::move(*host), std::move(ascend), std::move(*random), std::move(*ca));
  if (auto r = sim.load_nodes(); !r) {
    std::fprintf(stderr, "gridnode-sim: %s\n", r.error().message().c_str());
    return 1;
  }
  sim.start();
  io.run();
  auto s = sim.summary();
  std::printf("%s\n", s.dump().c_str());
  return s["all_acked"].get<bool>() ? 0 : 3;
}

}  // namespace
}  // namespace gridnode::bench

int main(int argc, char** argv) {
  gridnode::bench::Options o;
  CLI::App app{
      "gridnode-sim: many simulated nodes streaming signed reports over mutual TLS to "
      "gridnode-collector (docs/simulator.md). Prints one JSON summary; exit 0 when every "
      "report was acknowledged, 3 otherwise."};
  app.add_option("--collector", o.collectors,
                 "HOST:PORT of a collector; node i uses the i-th mod n")
      ->required();
  app.add_option("--pki", o.pki, "gridnode-collector pki init's directory (ca.crt, nodes/)")
      ->required();
  app.add_option("--nodes", o.nodes, "Simulated nodes, one TLS session each")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--prefix", o.prefix, "Node ids are PREFIX000001, PREFIX000002, …");
  app.add_option("--interval", o.interval_s, "Seconds between a node's reports")
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--duration", o.duration_s, "Seconds of the measuring window")
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--ramp", o.ramp_per_s, "New connections per second")
      ->check(CLI::Range(1.0, 100000.0));
  app.add_option("--connect-wait", o.connect_wait_s,
                 "Seconds to wait for every node to connect before measuring anyway");
  app.add_option("--drain", o.drain_s, "Seconds to wait for the last acknowledgements");
  app.add_option("--regions", o.regions, "Region labels r0…")->check(CLI::Range(1, 1000));
  app.add_option("--sites", o.sites, "Site labels s0…")->check(CLI::Range(1, 100000));
  app.add_option("--gpus", o.gpus, "Accelerators per node")->check(CLI::Range(1, 64));
  app.add_option("--fixtures", o.fixtures, "tests/fixtures: the host the drivers sweep");
  app.add_option("--nvml-library", o.nvml_library, "The fake libnvidia-ml.so.1");
  app.add_option("--dcmi-library", o.dcmi_library, "The fake libdcmi.so (Ascend nodes)");
  app.add_option("--ascend-share", o.ascend_share,
                 "Share of the nodes that are Huawei Ascend hosts (0: none; 0.5: a mixed fleet)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--watch", o.watch,
                 "NAME=PID: report the CPU seconds PID used in the window (NAME collector* counts "
                 "towards reports per collector CPU second)")
      ->check([](const std::string& s) {
        auto eq = s.find('=');
        return eq == std::string::npos || eq == 0 || std::atoi(s.c_str() + eq + 1) <= 0
                   ? std::string("NAME=PID expected")
                   : std::string();
      });
  app.add_option("--per-node", o.per_node, "Write `node last_seq acked_seq` lines to FILE");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  gridnode::platform::Log::set_threshold(gridnode::platform::Level::warning);
  try {
    return gridnode::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gridnode-sim: %s\n", e.what());
    return 1;
  }
}
