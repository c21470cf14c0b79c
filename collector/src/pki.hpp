#pragma once

#include <string>
#include <vector>

namespace gridnode::collector {

// `gridnode-collector pki`: a throw-away (or small-site) PKI for the demo, tests and small
// deployments. Not a replacement for a grid's real CA: no revocation, no HSM, keys on disk.
struct PkiInitOptions {
  std::string dir;
  std::vector<std::string> nodes;             // one certificate and key per node id
  std::vector<std::string> collector_names;   // extra DNS names / IPs for the collector
  int days = 365;
};
// DIR/ca.crt, ca.key, collector.crt, collector.key (SAN localhost, 127.0.0.1, ::1 and any
// extra names), nodes/<id>.crt, nodes/<id>.key; keys 0600. Refuses to overwrite an existing CA.
int pki_init(const PkiInitOptions& options);

struct PkiSignOptions {
  std::string dir;  // where ca.crt and ca.key are
  std::string csr;  // a node's request (gridnoded enroll)
  std::string out;  // the node certificate to write
  int days = 365;
};
int pki_sign(const PkiSignOptions& options);

}  // namespace gridnode::collector
