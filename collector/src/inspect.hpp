#pragma once

#include <string>

namespace gridnode::collector {

struct InspectOptions {
  std::string cert;               // the node's certificate: whose signature to check
  std::string file;               // a report file (gridnoded --once --report)
  std::string export_message;     // write the first report's signed bytes here
  std::string export_signature;   // and its signature, DER, for `openssl dgst -verify`
  bool signature_only = false;    // check the signatures alone, not the catalogs and values
};

// Prints one JSON line per report of the file, and one per catalog frame that no report names.
// Exit status: 0 when every report verified, 1 when one did not (bad signature, another node's
// id, values that cannot be read by the catalog it names: a catalog altered, missing or out of
// place, a report left out) or a catalog matches no digest a report names; 2 when the file or the
// certificate is unusable. With `signature_only`, catalog and value problems are only noted on
// stderr.
int inspect(const InspectOptions& options);

}  // namespace gridnode::collector
