#pragma once

#include <optional>
#include <string>

#include "gridnode/agent/config.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::agent {

// Where the node's identity lives in the state directory.
std::string node_key_path(const std::string& state_dir);   // DIR/node.key (0600)
std::string node_csr_path(const std::string& state_dir);   // DIR/node.csr
std::string node_cert_path(const std::string& state_dir);  // DIR/node.crt, signed by the grid CA
std::string chain_path(const std::string& state_dir);      // DIR/report.chain

// Who this node is: its id, and its key and certificate when enrolled.
struct Identity {
  std::string node_id;
  std::optional<crypto::PrivateKey> key;
  std::optional<crypto::Certificate> cert;
};

// Loads the identity from the state directory: a key that others can read is refused (like
// ssh), a certificate must carry the key's public key, and its CN is the node id; a configured
// id that disagrees with the certificate is an error. Without a certificate the id comes from
// the config, else from the host name. Without a key, `key` is empty unless `require_key`.
[[nodiscard]] platform::Result<Identity> load_identity(const Config& config, bool require_key);

// `gridnoded enroll`: creates DIR (0700) and DIR/node.key (0600) unless a key is there already
// (kept, so a renewal keeps the identity; `new_key` replaces it), then writes DIR/node.csr with
// subject CN=<node_id>. Returns what an operator should do next.
[[nodiscard]] platform::Result<std::string> enroll(const std::string& node_id,
                                                   const std::string& state_dir, bool new_key);

// The last report this node signed: its sequence number and digest, so that numbering and the
// prev-digest chain go on across restarts. A missing file is the start of the chain {0, zeros}.
struct ChainPoint {
  std::uint64_t seq = 0;
  crypto::Digest digest{};
};
[[nodiscard]] platform::Result<ChainPoint> read_chain(const std::string& path);
[[nodiscard]] platform::Result<void> write_chain(const std::string& path, const ChainPoint& point);

// The daemon's copy of the chain point, rewritten after every report with one pwrite of a
// fixed-size record (the format read_chain reads): cheap enough for every second, and it
// survives the agent being killed at any instant (the page cache keeps a finished write); only
// a power cut can take the last few, and the spool (which fsyncs) will own that case.
class ChainFile {
 public:
  ChainFile() = default;
  ~ChainFile();
  ChainFile(const ChainFile&) = delete;
  ChainFile& operator=(const ChainFile&) = delete;

  [[nodiscard]] platform::Result<void> open(const std::string& path);
  [[nodiscard]] platform::Result<void> record(const ChainPoint& point);
  // fsync, for a clean stop.
  [[nodiscard]] platform::Result<void> sync();

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace gridnode::agent
