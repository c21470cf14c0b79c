#pragma once

#include <string>

namespace gridnode::collector {

struct InspectOptions {
  std::string cert;               // the node's certificate: whose signature to check
  std::string file;               // a report file (gridnoded --once --report)
  std::string export_message;     // write the first report's signed bytes here
  std::string export_signature;   // and its signature, DER, for `openssl dgst -verify`
};

// Prints one JSON line per report of the file. Exit status: 0 when every report verified, 1 when
// one did not (bad signature, another node's id), 2 when the file or the certificate is unusable.
int inspect(const InspectOptions& options);

}  // namespace gridnode::collector
