#include "gridnode/agent/identity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <array>
#include <cstdio>

#include "gridnode/agent/report_builder.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::agent {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

platform::Result<void> make_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return platform::fail_errno(errno, "cannot create " + dir);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return platform::fail_errno(errno, dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return platform::fail(std::errc::not_a_directory, dir + " is not a directory");
  }
  return {};
}

}  // namespace

std::string node_key_path(const std::string& dir) { return dir + "/node.key"; }
std::string node_csr_path(const std::string& dir) { return dir + "/node.csr"; }
std::string node_cert_path(const std::string& dir) { return dir + "/node.crt"; }
std::string chain_path(const std::string& dir) { return dir + "/report.chain"; }

platform::Result<Identity> load_identity(const Config& config, bool require_key) {
  Identity id;
  const std::string key_path =
      config.upstream_key.empty() ? node_key_path(config.state_dir) : config.upstream_key;
  const std::string cert_path =
      config.upstream_cert.empty() ? node_cert_path(config.state_dir) : config.upstream_cert;
  if (exists(key_path)) {
    auto key = crypto::load_private_key_file(key_path);
    if (!key) {
      return tl::unexpected(key.error());
    }
    id.key.emplace(std::move(*key));
  } else if (require_key) {
    return platform::fail(std::errc::no_such_file_or_directory,
                          "no node key at " + key_path + ": run `gridnoded enroll --node-id ID "
                          "--state-dir " + config.state_dir + "` first");
  }
  if (exists(cert_path)) {
    auto cert = crypto::Certificate::load_file(cert_path);
    if (!cert) {
      return tl::unexpected(cert.error());
    }
    if (id.key && !(cert->public_key() == id.key->public_key())) {
      return platform::fail(std::errc::invalid_argument,
                            cert_path + " does not belong to " + key_path +
                                " (its public key differs): install the certificate issued for "
                                "this node's CSR");
    }
    std::string cn = cert->common_name();
    if (!protocol::valid_node_id(cn)) {
      return platform::fail(std::errc::invalid_argument,
                            cert_path + ": subject CN \"" + cn + "\" is not a valid node id");
    }
    if (!config.node_id.empty() && config.node_id != cn) {
      return platform::fail(std::errc::invalid_argument,
                            "configured node id \"" + config.node_id + "\" disagrees with " +
                                cert_path + " (CN=" + cn + ")");
    }
    id.node_id = cn;
    id.cert.emplace(std::move(*cert));
  } else {
    id.node_id = config.node_id.empty() ? host_node_id() : config.node_id;
  }
  return id;
}

platform::Result<std::string> enroll(const std::string& node_id, const std::string& state_dir,
                                     bool new_key) {
  if (!protocol::valid_node_id(node_id)) {
    return platform::fail(std::errc::invalid_argument,
                          "node id \"" + node_id + "\": must be 1 to 128 of A-Z a-z 0-9 . _ -");
  }
  if (auto r = make_private_dir(state_dir); !r) {
    return tl::unexpected(r.error());
  }
  auto random = crypto::Random::create("gridnoded enroll");
  if (!random) {
    return tl::unexpected(random.error());
  }
  const std::string key_path = node_key_path(state_dir);
  std::string summary;
  std::optional<crypto::PrivateKey> key;
  if (exists(key_path) && !new_key) {
    auto k = crypto::load_private_key_file(key_path);
    if (!k) {
      return tl::unexpected(k.error());
    }
    key.emplace(std::move(*k));
    summary += "kept the existing node key " + key_path + "\n";
  } else {
    auto k = crypto::PrivateKey::generate(**random);
    if (!k) {
      return tl::unexpected(k.error());
    }
    if (auto w = crypto::write_private_key_file(key_path, *k, new_key); !w) {
      return tl::unexpected(w.error());
    }
    key.emplace(std::move(*k));
    summary += "created node key " + key_path + " (ECDSA P-256, mode 0600)\n";
  }
  auto csr = crypto::write_csr_pem(*key, "CN=" + node_id + ",O=gridnode", **random);
  if (!csr) {
    return tl::unexpected(csr.error());
  }
  const std::string csr_path = node_csr_path(state_dir);
  if (auto w = platform::write_file_atomic(csr_path, *csr, 0644); !w) {
    return tl::unexpected(w.error());
  }
  summary += "wrote certificate request " + csr_path + " for CN=" + node_id + "\n";
  summary += "next: have the grid CA sign it and install the certificate as " +
             node_cert_path(state_dir) + "\n";
  return summary;
}

platform::Result<ChainPoint> read_chain(const std::string& path) {
  std::string text;
  if (auto r = platform::read_file(path, text, 4096); !r) {
    if (r.error().code == std::errc::no_such_file_or_directory) {
      return ChainPoint{};
    }
    return tl::unexpected(r.error());
  }
  // "seq 41\ndigest <64 hex>\n"
  ChainPoint p;
  std::string_view rest = text;
  auto line = [&rest]() {
    auto nl = rest.find('\n');
    std::string_view l = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    return l;
  };
  std::string_view seq = line();
  std::string_view digest = line();
  auto bad = [&path] {
    return platform::fail(std::errc::bad_message,
                          path + ": not a chain file (\"seq N\" and \"digest HEX\" lines expected); "
                                 "restore it from a backup rather than deleting it, or numbering "
                                 "restarts at 1");
  };
  if (!seq.starts_with("seq ") || !digest.starts_with("digest ")) {
    return bad();
  }
  auto n = platform::parse_uint64(seq.substr(4));
  auto d = crypto::digest_from_hex(digest.substr(7));
  if (!n || !d) {
    return bad();
  }
  p.seq = *n;
  p.digest = *d;
  return p;
}

namespace {

// "seq 00000000000000004711\ndigest <64 hex>\n": always 97 bytes, so a rewrite in place never
// needs a truncate; written into a stack buffer, so the daemon's per-report rewrite allocates
// nothing.
std::string_view chain_text(const ChainPoint& point, std::array<char, 128>& buf) {
  int n = std::snprintf(buf.data(), buf.size(), "seq %020llu\ndigest ",
                        static_cast<unsigned long long>(point.seq));
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t at = static_cast<std::size_t>(n);
  for (std::uint8_t b : point.digest) {
    buf[at++] = kHex[b >> 4];
    buf[at++] = kHex[b & 15];
  }
  buf[at++] = '\n';
  return {buf.data(), at};
}

}  // namespace

platform::Result<void> write_chain(const std::string& path, const ChainPoint& point) {
  std::array<char, 128> buf{};
  return platform::write_file_atomic(path, chain_text(point, buf), 0600);
}

ChainFile::~ChainFile() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

platform::Result<void> ChainFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return platform::fail_errno(errno, "cannot open " + path);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = fd;
  path_ = path;
  return {};
}

platform::Result<void> ChainFile::record(const ChainPoint& point) {
  std::array<char, 128> buf{};
  std::string_view text = chain_text(point, buf);
  ssize_t n = ::pwrite(fd_, text.data(), text.size(), 0);
  if (n != static_cast<ssize_t>(text.size())) {
    return platform::fail_errno(n < 0 ? errno : EIO, "cannot write " + path_);
  }
  return {};
}

platform::Result<void> ChainFile::sync() {
  if (fd_ >= 0 && ::fsync(fd_) != 0) {
    return platform::fail_errno(errno, "cannot fsync " + path_);
  }
  return {};
}

}  // namespace gridnode::agent
