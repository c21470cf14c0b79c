// gridnode-collector: the reference receiver of gridnode reports.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "gridnode/platform/log.hpp"
#include "inspect.hpp"
#include "pki.hpp"
#include "server.hpp"

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

  gridnode::collector::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "Receive reports over mutual TLS, verify them and store them in a sink");
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT to listen on ([::1]:PORT for IPv6)")
      ->capture_default_str();
  serve_cmd->add_option("--ca", serve.ca, "The grid CA certificate")->required();
  serve_cmd->add_option("--cert", serve.cert, "The collector's certificate")->required();
  serve_cmd->add_option("--key", serve.key, "The collector's key (mode 0600)")->required();
  serve_cmd->add_option("--sink", serve.sink, "The JSON Lines file verified records go to")
      ->required();
  serve_cmd->add_flag("--verify-all", serve.verify_all,
                      "Check every report's signature, not one per linked run (audits)");
  serve_cmd->add_option("--window", serve.window, "Reports an agent may have in flight")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str();

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
