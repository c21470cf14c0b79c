// gridnode-collector: the reference receiver of gridnode reports.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "gridnode/platform/log.hpp"
#include "gridnode/collector/capacity.hpp"
#include "gridnode/collector/export.hpp"
#include "inspect.hpp"
#include "pki.hpp"
#include "server.hpp"

namespace {

// The stream's and bucket's settings: created with them on first use, checked against them after.
void add_jetstream_options(CLI::App& cmd, gridnode::collector::JetStreamOptions& o) {
  cmd.add_option("--replicas", o.replicas, "JetStream: replicas of the stream and the bucket")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  cmd.add_option_function<std::int64_t>(
         "--max-age", [&o](std::int64_t s) { o.max_age = std::chrono::seconds(s); },
         "JetStream: seconds a record is kept (default 7 days)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  cmd.add_option("--max-bytes", o.max_bytes, "JetStream: bytes the stream keeps at most")
      ->capture_default_str();
  cmd.add_option_function<std::int64_t>(
         "--duplicate-window",
         [&o](std::int64_t s) { o.duplicate_window = std::chrono::seconds(s); },
         "JetStream: seconds a message id is remembered (default 600, above the agents' "
         "longest backoff)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400}));
}

// The same remote-write options on serve and export (docs/collector.md, "remote_write").
void add_remote_write_options(CLI::App& cmd, gridnode::collector::RemoteWriteFlags& f) {
  cmd.add_option("--remote-write", f.urls,
                 "Prometheus remote_write URL to send every stored report to (repeatable; "
                 "credentials: --remote-write-config)");
  cmd.add_option("--remote-write-config", f.config,
                 "TOML file of [[remote_write]] targets (url, username, password_file, "
                 "bearer_token_file, ca_file, job, resend_window, …)")
      ->check(CLI::ExistingFile);
  cmd.add_option("--remote-write-job", f.job, "The job label of the samples sent")
      ->capture_default_str();
  cmd.add_option("--remote-write-resend-window", f.resend_window_s,
                 "Seconds of acknowledged samples sent again after a target failed or at "
                 "start (0: none)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"gridnode-collector: receives, verifies and stores gridnode reports.",
               "gridnode-collector"};
  app.set_version_flag("--version", std::string("gridnode-collector ") + GRIDNODE_VERSION);
  app.require_subcommand(1);

  gridnode::collector::InspectOptions inspect;
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Decode a report file, verify its signatures and print each report as JSON");
  cmd->add_option("--cert", inspect.cert, "The node's certificate (PEM or DER)")->required();
  cmd->add_option("file", inspect.file, "Report file (gridnoded --once --report FILE)")
      ->required();
  cmd->add_option("--export-message", inspect.export_message,
                  "Write the first report's signed bytes to this file");
  cmd->add_option("--export-signature", inspect.export_signature,
                  "Write its signature (DER) to this file, for openssl dgst -verify");
  cmd->add_flag("--signature-only", inspect.signature_only,
                "Check each report's signature and node alone: a catalog frame that is altered, "
                "missing or named by no report is only noted on stderr (without it, that is exit "
                "status 1)");

  gridnode::collector::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "Receive reports over mutual TLS, verify them and store them in a sink");
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT to listen on ([::1]:PORT for IPv6)")
      ->capture_default_str();
  serve_cmd->add_option("--ca", serve.ca, "The grid CA certificate")->required();
  serve_cmd->add_option("--cert", serve.cert, "The collector's certificate")->required();
  serve_cmd->add_option("--key", serve.key, "The collector's key (mode 0600)")->required();
  serve_cmd->add_option("--sink", serve.sink,
                        "The JSON Lines file verified records go to, or nats://HOST:PORT[,…] to "
                        "publish them to JetStream (docs/jetstream.md)")
      ->required();
  add_jetstream_options(*serve_cmd, serve.jetstream);
  add_remote_write_options(*serve_cmd, serve.remote_write);
  serve_cmd->add_flag("--verify-all", serve.verify_all,
                      "Check every report's signature, not one per linked run (audits)");
  serve_cmd->add_option("--window", serve.window, "Reports an agent may have in flight")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str();
  auto* key_opt = serve_cmd->add_option(
      "--policy-key", serve.policy_key,
      "The grid's policy public key (PEM) the --policy-bundle must verify with");
  serve_cmd
      ->add_option("--policy-bundle", serve.policy_bundle,
                   "A signed policy bundle to push to the agents (re-read on SIGHUP; "
                   "docs/policy.md)")
      ->needs(key_opt);

  gridnode::collector::ExportOptions exp;
  CLI::App* export_cmd = app.add_subcommand(
      "export", "Write the JetStream stream to a JSON Lines archive, exactly once (durable consumer)");
  export_cmd->add_option("--from", exp.from, "nats://HOST:PORT[,…]")->required();
  export_cmd->add_option("--sink", exp.sink, "The JSON Lines file to append to")->required();
  export_cmd->add_option("--durable", exp.durable, "The consumer's name (one per archive)")
      ->capture_default_str();
  export_cmd->add_flag("--drain", exp.drain,
                       "Exit once nothing is pending (and the remote-write targets have it)");
  add_remote_write_options(*export_cmd, exp.remote_write);

  gridnode::collector::CapacityOptions cap;
  CLI::App* capacity_cmd = app.add_subcommand(
      "capacity", "Serve the grid's free accelerators over HTTP, from the JetStream stream");
  capacity_cmd->add_option("--from", cap.from, "nats://HOST:PORT[,…]")->required();
  capacity_cmd->add_option("--listen", cap.listen, "HOST:PORT for HTTP")->capture_default_str();
  capacity_cmd->add_option("--stale-after", cap.stale_after_intervals,
                           "A node is stale after this many of its intervals without a report")
      ->check(CLI::Range(1.0, 1000.0))
      ->capture_default_str();
  capacity_cmd->add_option_function<double>(
      "--default-interval",
      [&cap](double s) {
        cap.default_interval = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
      },
      "Seconds assumed between a node's reports until two of them show it (default 10)")
      ->check(CLI::Range(0.001, 86400.0));

  gridnode::collector::PkiInitOptions init;
  gridnode::collector::PkiSignOptions sign;
  CLI::App* pki = app.add_subcommand(
      "pki", "A throw-away PKI for the demo, tests and small sites (not a grid CA)");
  pki->require_subcommand(1);
  CLI::App* pki_init = pki->add_subcommand(
      "init", "Create a CA, a collector certificate and one certificate per node");
  pki_init->add_option("--dir", init.dir, "Where to write them")->required();
  pki_init->add_option("--nodes", init.nodes, "Node ids, comma-separated")->delimiter(',');
  pki_init->add_option("--collector-name", init.collector_names,
                       "Extra DNS name or IP of the collector (repeatable)");
  pki_init->add_option("--days", init.days, "Validity of the certificates")
      ->check(CLI::Range(1, 3650));
  CLI::App* pki_sign = pki->add_subcommand("sign", "Sign a node's request (gridnoded enroll)");
  pki_sign->add_option("--dir", sign.dir, "Where ca.crt and ca.key are")->required();
  pki_sign->add_option("--csr", sign.csr, "The node's node.csr")->required();
  pki_sign->add_option("--out", sign.out, "The certificate to write (node.crt)")->required();
  pki_sign->add_option("--days", sign.days, "Validity")->check(CLI::Range(1, 3650));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (cmd->parsed()) {
    return gridnode::collector::inspect(inspect);
  }
  if (serve_cmd->parsed()) {
    gridnode::platform::Log::detect_sink();
    return gridnode::collector::serve(serve);
  }
  if (export_cmd->parsed()) {
    gridnode::platform::Log::detect_sink();
    return gridnode::collector::export_stream(exp);
  }
  if (capacity_cmd->parsed()) {
    gridnode::platform::Log::detect_sink();
    return gridnode::collector::capacity(cap);
  }
  if (pki_init->parsed()) {
    return gridnode::collector::pki_init(init);
  }
  if (pki_sign->parsed()) {
    return gridnode::collector::pki_sign(sign);
  }
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gridnode-collector: %s\n", e.what());
  return 2;
}
