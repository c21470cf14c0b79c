// gridnode-collector: the reference receiver of gridnode reports.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "inspect.hpp"

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (cmd->parsed()) {
    return gridnode::collector::inspect(inspect);
  }
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gridnode-collector: %s\n", e.what());
  return 2;
}
