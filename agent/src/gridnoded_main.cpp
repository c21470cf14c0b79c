// gridnoded: the gridnode agent daemon.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>

#include "gridnode/agent/agent.hpp"
#include "gridnode/agent/config.hpp"
#include "gridnode/agent/exposition.hpp"
#include "gridnode/agent/identity.hpp"
#include "gridnode/agent/reporter.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/agent/sampler.hpp"
#include "gridnode/drivers/registry.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/platform/notify.hpp"

namespace {

using gridnode::platform::Level;
using gridnode::platform::LogLine;
namespace agent = gridnode::agent;

constexpr const char* kDefaultConfig = "/etc/gridnode/agent.toml";

struct Flags {
  std::string config;
  std::string sysfs, procfs, rootfs, state_dir, socket, interval, log_level;
  // The flags the drivers declare (drivers::driver_flags()), by flag; and node_exporter's
  // --collector.NAME / --no-collector.NAME, one pair per driver.
  std::map<std::string, std::string> driver_flags;
  std::vector<std::string> collectors_on, collectors_off;
  std::string report;
  std::string policy;
  unsigned count = 1;
  std::vector<std::string> upstream;
  std::string ca, cert, key;
  // node_exporter's --web.* flags
  std::vector<std::string> web_listen;
  std::optional<std::string> web_config;
  std::string web_path;
  std::optional<unsigned> web_max_requests;
  bool once = false;
  bool json = false;
  // enroll
  std::string node_id;
  bool new_key = false;
  bool enroll = false;  // the enroll subcommand was given
};

// The sysfs drivers keep their files open (a GPU node's AER counters, InfiniBand ports and
// hwmon sensors can pass a thousand), and systemd's default soft limit is 1024. The soft limit
// goes up to the hard one, as Go's runtime does for node_exporter; the agent never uses
// select(), so descriptors past FD_SETSIZE are safe. The kernel's table grows only as used.
void raise_open_file_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

void die(const std::string& message) {
  gridnode::platform::log(Level::err, "gridnoded", LogLine(message));
  std::exit(1);
}

// The reports of --once --report, as frames of a report file.
class ReportFileSink final : public agent::ReportSink {
 public:
  void on_report(std::span<const std::uint8_t> catalog, std::span<const std::uint8_t> envelope,
                 const gridnode::protocol::ReportHeader&) override {
    namespace protocol = gridnode::protocol;
    if (!catalog.empty()) {
      protocol::append_frame(file, protocol::FrameKind::catalog, catalog);
    }
    protocol::append_frame(file, protocol::FrameKind::report, envelope);
    report_bytes += envelope.size();
  }

  gridnode::protocol::Bytes file{gridnode::protocol::kReportFileMagic.begin(),
                                 gridnode::protocol::kReportFileMagic.end()};
  std::size_t report_bytes = 0;
};

// --once: one sweep of every driver, printed, then exit.
// --once --report FILE: `count` signed reports (one interval apart) and their catalog, as a
// report file; the chain (seq, digest) in the state directory moves on with them. The reports
// are made by the daemon's own Reporter, so they are what the daemon would send.
std::string write_reports(const agent::Config& config, asio::io_context& io,
                          agent::Sampler& sampler, const std::string& path, unsigned count) {
  // The policy is judged on the same sweeps, so its events ride in these reports.
  agent::PolicyEngine policy(io, agent::make_policy_options(config, nullptr));
  policy.load();
  policy.check_once(sampler);
  auto id = agent::load_identity(config, true);
  if (!id) {
    die("cannot sign a report: " + id.error().message());
  }
  const std::string chain_file = agent::chain_path(config.state_dir);
  auto chain = agent::read_chain(chain_file);
  if (!chain) {
    die(chain.error().message());
  }
  auto reporter = agent::Reporter::create(config, std::move(*id), *chain);
  if (!reporter) {
    die("cannot make reports: " + reporter.error().message());
  }
  ReportFileSink sink;
  (*reporter)->set_sink(&sink);
  const auto& file = sink.file;
  const std::size_t& report_bytes = sink.report_bytes;
  const std::uint64_t first = chain->seq + 1;
  for (unsigned i = 0; i < count; ++i) {
    if (i > 0) {
      std::this_thread::sleep_for(config.interval);
      sampler.run_once([&] { io.stop(); });
      io.restart();
      io.run();
      policy.on_round(sampler);
    }
    io.restart();
    io.poll();  // results the policy posted
    (*reporter)->add_events(policy.events().take_report_events(std::chrono::steady_clock::now()));
    (*reporter)->on_round(sampler);
  }
  if ((*reporter)->chain().seq != first + count - 1) {
    die("cannot sign the reports: " +
        (*reporter)->status_json().value("error", std::string("unknown error")));
  }
  if (auto w = gridnode::platform::write_file_atomic(
          path, std::string_view(reinterpret_cast<const char*>(file.data()), file.size()), 0644);
      !w) {
    die("cannot write the report: " + w.error().message());
  }
  if (auto w = agent::write_chain(chain_file, (*reporter)->chain()); !w) {
    die("reports written, but the chain could not be saved: " + w.error().message());
  }
  auto st = (*reporter)->status_json();
  std::string seqs = count == 1 ? "report " + std::to_string(first)
                                : "reports " + std::to_string(first) + "-" +
                                      std::to_string(first + count - 1);
  return "wrote " + seqs + " of node " + (*reporter)->node_id() + " to " + path + ": " +
         std::to_string(st["last_samples"].get<std::size_t>()) + " samples, " +
         std::to_string(report_bytes) + " bytes signed (64 of them signature per report), " +
         "catalog " + std::to_string(st["catalog_bytes"].get<std::size_t>()) + " bytes\n";
}

int run_once(const agent::Config& config, bool json, const std::string& report,
             unsigned count) {
  asio::io_context io{1};
  auto drivers = gridnode::drivers::make_drivers(agent::driver_context(config), config.drivers,
                                                 config.driver_sections);
  if (!drivers) {
    die("cannot start: " + drivers.error().message());
  }
  agent::Sampler sampler(io, std::move(*drivers), {config.interval, config.sweep_timeout});
  sampler.run_once([&] { io.stop(); });
  io.run();
  std::string out;
  if (!report.empty()) {
    out = write_reports(config, io, sampler, report, count);
  } else if (json) {
    nlohmann::json j = {
        {"status", agent::Exposition::status_json(sampler, std::chrono::steady_clock::now(),
                                                  config.source)},
        {"samples", agent::Exposition::samples_json(sampler)}};
    out = j.dump(2) + "\n";
  } else {
    agent::Exposition exposition;
    exposition.render_prometheus(sampler, out);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  if (sampler.any_busy()) {
    std::_Exit(0);  // a hung driver's thread cannot be joined; the output is out
  }
  return 0;
}

// The command line into `f`; an exit code where parsing ends the program (--help, --version, a
// bad flag). The parser lives only here: its options and help texts (one pair of
// --collector.NAME flags per driver) would otherwise stay resident for the daemon's life.
std::optional<int> parse_flags(int argc, char** argv, Flags& f) {
  CLI::App app{"gridnoded: the gridnode agent. Samples this host's sensors and state, and answers "
               "technicians on a local socket.",
               "gridnoded"};
  app.add_option("--config", f.config, "Configuration file (TOML)")
      ->default_str(kDefaultConfig);
  app.add_option("--sysfs-root", f.sysfs, "Where sysfs is mounted (default /sys)");
  app.add_option("--procfs-root", f.procfs, "Where procfs is mounted (default /proc)");
  app.add_option("--rootfs-root", f.rootfs,
                 "Where the host's root file system is seen, for the filesystem driver (default /)");
  app.add_option("--state-dir", f.state_dir, "State directory (default /var/lib/gridnode)");
  const auto declared = gridnode::drivers::driver_flags();
  for (const auto& d : declared) {
    f.driver_flags[std::string(d.flag)];
  }
  for (const auto& d : declared) {
    app.add_option(std::string(d.flag), f.driver_flags[std::string(d.flag)], std::string(d.help));
  }
  // node_exporter's collector switches: on top of agent.toml's drivers (empty: all of them).
  for (auto name : gridnode::drivers::driver_names()) {
    const std::string n(name);
    app.add_flag_callback("--collector." + n, [&f, n] { f.collectors_on.push_back(n); },
                          "Run the " + n + " driver (with agent.drivers set: as well)");
    app.add_flag_callback("--no-collector." + n, [&f, n] { f.collectors_off.push_back(n); },
                          "Do not run the " + n + " driver");
  }
  app.add_option("--socket", f.socket, "Control socket (default /run/gridnode/control.sock)");
  app.add_option("--upstream", f.upstream,
                 "Collector HOST:PORT to stream reports to (repeatable; replaces [upstream] endpoints)");
  app.add_option("--ca", f.ca, "The grid CA certificate (default /etc/gridnode/ca.crt)");
  app.add_option("--cert", f.cert, "This node's certificate (default STATE_DIR/node.crt)");
  app.add_option("--key", f.key, "This node's key (default STATE_DIR/node.key)");
  app.add_option("--policy", f.policy,
                 "Security policy file (TOML, docs/policy.md; default /etc/gridnode/policy.toml)");
  // node_exporter's names and meanings, so that a unit's ExecStart or a container's arguments
  // carry over (the [web] section of agent.toml holds the same).
  app.add_option("--web.listen-address", f.web_listen,
                 "Address to serve Prometheus scrapes on, HOST:PORT or :PORT (repeatable; "
                 "replaces [web] listen_addresses; none: no port is opened)");
  app.add_option("--web.config.file", f.web_config,
                 "exporter-toolkit web configuration (TLS, basic auth), as node_exporter's");
  app.add_option("--web.telemetry-path", f.web_path,
                 "Path under which to expose metrics (default /metrics)");
  app.add_option("--web.max-requests", f.web_max_requests,
                 "Maximum number of parallel scrape requests (default 40; 0: the server's bound, 64)")
      ->check(CLI::Range(0u, 1024u));
  app.add_option("--interval", f.interval, "Sampling interval in seconds, fractions allowed");
  app.add_option("--log-level", f.log_level, "error, warning, notice, info or debug");
  app.add_flag("--once", f.once, "Take one sweep, print it (Prometheus text) and exit");
  app.add_flag("--json", f.json, "With --once: print JSON instead");
  app.add_option("--report", f.report,
                 "With --once: write one signed report and its catalog to this file instead");
  app.add_option("--reports", f.count,
                 "With --once --report: write this many consecutive reports, one interval apart")
      ->check(CLI::Range(1u, 3600u));
  CLI::App* enroll = app.add_subcommand(
      "enroll", "Create this node's key (STATE_DIR/node.key) and a certificate request for the "
                "grid's CA (STATE_DIR/node.csr)");
  enroll->add_option("--node-id", f.node_id, "This node's id, the certificate's CN")->required();
  enroll->add_option("--state-dir", f.state_dir, "State directory (default /var/lib/gridnode)");
  enroll->add_flag("--new-key", f.new_key, "Replace an existing key instead of keeping it");
  app.set_version_flag("--version", std::string("gridnoded ") + std::string(agent::version()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  f.enroll = enroll->parsed();
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) try {
  // One malloc arena: the worker threads allocate little, and per-thread arenas would cost
  // resident memory for nothing.
  ::mallopt(M_ARENA_MAX, 1);
  raise_open_file_limit();
  gridnode::platform::Log::detect_sink();

  Flags f;
  if (auto exit_code = parse_flags(argc, argv, f)) {
    return *exit_code;
  }
  const auto declared = gridnode::drivers::driver_flags();
  if (f.json && !f.once) {
    die("--json only goes with --once");
  }
  if (!f.report.empty() && (!f.once || f.json)) {
    die("--report goes with --once, and not with --json");
  }
  for (const auto& e : f.upstream) {
    if (auto ok = agent::check_endpoint(e); !ok) {
      die("--upstream " + ok.error().context);
    }
  }
  for (const auto& a : f.web_listen) {
    if (auto ok = agent::check_listen_address(a); !ok) {
      die("--web.listen-address " + ok.error().context);
    }
  }
  if (!f.web_path.empty()) {
    if (auto ok = agent::check_telemetry_path(f.web_path); !ok) {
      die("--web.telemetry-path " + ok.error().context);
    }
  }
  if (f.count != 1 && f.report.empty()) {
    die("--reports goes with --once --report FILE");
  }
  if (f.enroll) {
    auto done = agent::enroll(f.node_id, f.state_dir.empty() ? "/var/lib/gridnode" : f.state_dir,
                              f.new_key);
    if (!done) {
      die("enroll failed: " + done.error().message());
    }
    std::fputs(done->c_str(), stdout);
    return 0;
  }

  // Flags are checked once here and re-applied on every reload, so that they keep winning over
  // the file.
  std::optional<std::chrono::nanoseconds> interval;
  if (!f.interval.empty()) {
    auto s = agent::parse_seconds(f.interval);
    if (!s) {
      die("--interval " + s.error().context);
    }
    interval = *s;
  }
  std::optional<Level> level;
  if (!f.log_level.empty()) {
    auto l = agent::parse_level(f.log_level);
    if (!l) {
      die("--log-level " + l.error().context);
    }
    level = *l;
  }
  auto apply_flags = [&f, declared, interval, level](agent::Config& c) -> gridnode::platform::Result<void> {
    if (!f.sysfs.empty()) c.roots.sysfs = f.sysfs;
    if (!f.procfs.empty()) c.roots.procfs = f.procfs;
    if (!f.rootfs.empty()) c.roots.rootfs = f.rootfs;
    for (const auto& d : declared) {
      const std::string& v = f.driver_flags.at(std::string(d.flag));
      if (v.empty()) {
        continue;
      }
      auto it = std::find_if(c.driver_sections.begin(), c.driver_sections.end(),
                             [&](const auto& s) { return s.name == d.driver; });
      if (it == c.driver_sections.end()) {
        it = c.driver_sections.insert(c.driver_sections.end(),
                                      gridnode::drivers::OptionSection{std::string(d.driver), {}});
      }
      it->set({std::string(d.key), std::string(d.flag), v});
      if (auto ok = gridnode::drivers::check_section(*it); !ok) {
        return ok;
      }
    }
    auto selected =
        gridnode::drivers::select_drivers(c.drivers, f.collectors_on, f.collectors_off);
    if (!selected) {
      return tl::unexpected(selected.error());
    }
    c.drivers = std::move(*selected);
    if (!f.state_dir.empty()) c.state_dir = f.state_dir;
    if (!f.socket.empty()) c.socket_path = f.socket;
    if (!f.policy.empty()) {
      c.policy_file = f.policy;
      c.policy_file_required = true;
    }
    if (interval) c.interval = *interval;
    if (level) c.log_level = *level;
    if (!f.upstream.empty()) c.upstream_endpoints = f.upstream;
    if (!f.ca.empty()) c.upstream_ca = f.ca;
    if (!f.cert.empty()) c.upstream_cert = f.cert;
    if (!f.key.empty()) c.upstream_key = f.key;
    if (!f.web_listen.empty()) c.web_listen = f.web_listen;
    if (f.web_config) c.web_config_file = *f.web_config;
    if (!f.web_path.empty()) c.web_telemetry_path = f.web_path;
    if (f.web_max_requests) c.web_max_requests = *f.web_max_requests;
    return {};
  };

  std::string path = f.config.empty() ? kDefaultConfig : f.config;
  agent::Config config;
  auto loaded = agent::read_config(path);
  if (loaded) {
    config = std::move(*loaded);
  } else if (loaded.error().code == std::errc::no_such_file_or_directory && f.config.empty()) {
    path = kDefaultConfig;  // absent default file: embedded defaults, reload may add it later
  } else {
    die("config rejected: " + loaded.error().message());
  }
  if (f.once && f.log_level.empty()) {
    config.log_level = Level::warning;  // --once prints data; lifecycle chatter is noise there
  }
  if (auto ok = apply_flags(config); !ok) {
    die(ok.error().message());
  }
  gridnode::platform::Log::set_threshold(config.log_level);

  if (f.once) {
    return run_once(config, f.json, f.report, f.count);
  }

  asio::io_context io{1};
  agent::Agent daemon(io, config, path, apply_flags,
                      gridnode::platform::ServiceNotifier::from_environment());
  if (auto r = daemon.start(); !r) {
    die("cannot start: " + r.error().message());
  }
  io.run();
  gridnode::platform::log(Level::notice, "gridnoded", LogLine("stopped"));
  if (daemon.sampler().any_busy()) {
    std::_Exit(0);  // a driver hung in the kernel: its thread cannot be joined
  }
  return 0;
} catch (const std::exception& e) {
  // Last resort: one line, non-zero exit, and systemd restarts us.
  gridnode::platform::log(Level::err, "gridnoded", LogLine("fatal").kv("err", e.what()));
  return 1;
}
