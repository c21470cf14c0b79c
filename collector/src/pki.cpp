#include "pki.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/crypto/issue.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::collector {
namespace {

using crypto::CertificateProfile;

int complain(const std::string& message) {
  std::fprintf(stderr, "gridnode-collector pki: %s\n", message.c_str());
  return 2;
}

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool make_dir(const std::string& dir, mode_t mode) {
  return ::mkdir(dir.c_str(), mode) == 0 || errno == EEXIST;
}

// A new key and a certificate for it, written as NAME.key (0600) and NAME.crt.
platform::Result<void> issue_pair(const std::string& base, const CertificateProfile& profile,
                                  const crypto::PrivateKey& ca_key,
                                  const std::optional<crypto::Certificate>& ca,
                                  crypto::Random& random) {
  auto key = crypto::PrivateKey::generate(random);
  if (!key) {
    return tl::unexpected(key.error());
  }
  auto pem = crypto::issue_certificate_pem(key->public_key(), profile,
                                           ca ? ca_key : *key, ca, random);
  if (!pem) {
    return tl::unexpected(pem.error());
  }
  if (auto w = crypto::write_private_key_file(base + ".key", *key); !w) {
    return w;
  }
  return platform::write_file_atomic(base + ".crt", *pem, 0644);
}

CertificateProfile profile(CertificateProfile::Kind kind, std::string subject, int days) {
  CertificateProfile p;
  p.kind = kind;
  p.subject = std::move(subject);
  p.not_before = now() - 3600;  // an hour of slack for clocks a little behind
  p.not_after = now() + std::int64_t{days} * 86400;
  return p;
}

bool looks_like_ip(const std::string& name) {
  return name.find(':') != std::string::npos ||
         name.find_first_not_of("0123456789.") == std::string::npos;
}

}  // namespace

int pki_init(const PkiInitOptions& o) {
  for (const auto& n : o.nodes) {
    if (!protocol::valid_node_id(n)) {
      return complain("node id \"" + n + "\": must be 1 to 128 of A-Z a-z 0-9 . _ -");
    }
  }
  if (!make_dir(o.dir, 0700) || !make_dir(o.dir + "/nodes", 0700)) {
    return complain("cannot create " + o.dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat((o.dir + "/ca.key").c_str(), &st) == 0) {
    return complain(o.dir + "/ca.key exists: refusing to replace a CA (use pki sign, or a new --dir)");
  }
  auto random = crypto::Random::create("gridnode-collector pki");
  if (!random) {
    return complain(random.error().message());
  }
  // The CA: self-signed.
  auto ca_key = crypto::PrivateKey::generate(**random);
  if (!ca_key) {
    return complain(ca_key.error().message());
  }
  auto ca_pem = crypto::issue_certificate_pem(
      ca_key->public_key(),
      profile(CertificateProfile::Kind::ca, "CN=gridnode throw-away CA,O=gridnode", o.days * 2),
      *ca_key, std::nullopt, **random);
  if (!ca_pem) {
    return complain(ca_pem.error().message());
  }
  if (auto w = crypto::write_private_key_file(o.dir + "/ca.key", *ca_key); !w) {
    return complain(w.error().message());
  }
  if (auto w = platform::write_file_atomic(o.dir + "/ca.crt", *ca_pem, 0644); !w) {
    return complain(w.error().message());
  }
  auto ca = crypto::Certificate::from_pem(*ca_pem);
  if (!ca) {
    return complain(ca.error().message());
  }

  auto server = profile(CertificateProfile::Kind::server, "CN=gridnode-collector,O=gridnode", o.days);
  server.dns_names = {"localhost"};
  server.ip_addresses = {"127.0.0.1", "::1"};
  for (const auto& n : o.collector_names) {
    (looks_like_ip(n) ? server.ip_addresses : server.dns_names).push_back(n);
  }
  if (auto r = issue_pair(o.dir + "/collector", server, *ca_key, *ca, **random); !r) {
    return complain("collector: " + r.error().message());
  }
  for (const auto& n : o.nodes) {
    auto client = profile(CertificateProfile::Kind::client, "CN=" + n + ",O=gridnode", o.days);
    if (auto r = issue_pair(o.dir + "/nodes/" + n, client, *ca_key, *ca, **random); !r) {
      return complain(n + ": " + r.error().message());
    }
  }
  std::printf("CA %s/ca.crt, collector %s/collector.crt, %zu node certificate%s in %s/nodes/\n",
              o.dir.c_str(), o.dir.c_str(), o.nodes.size(), o.nodes.size() == 1 ? "" : "s",
              o.dir.c_str());
  return 0;
}

int pki_sign(const PkiSignOptions& o) {
  auto ca = crypto::Certificate::load_file(o.dir + "/ca.crt");
  if (!ca) {
    return complain(ca.error().message());
  }
  auto ca_key = crypto::load_private_key_file(o.dir + "/ca.key");
  if (!ca_key) {
    return complain(ca_key.error().message());
  }
  std::string csr_text;
  if (auto r = platform::read_file(o.csr, csr_text, 1 << 16); !r) {
    return complain(r.error().message());
  }
  auto csr = crypto::parse_csr_pem(csr_text);
  if (!csr) {
    return complain(o.csr + ": " + csr.error().message());
  }
  if (!protocol::valid_node_id(csr->common_name)) {
    return complain(o.csr + ": CN \"" + csr->common_name + "\" is not a valid node id");
  }
  auto random = crypto::Random::create("gridnode-collector pki sign");
  if (!random) {
    return complain(random.error().message());
  }
  auto pem = crypto::issue_certificate_pem(
      csr->key,
      profile(CertificateProfile::Kind::client, "CN=" + csr->common_name + ",O=gridnode", o.days),
      *ca_key, *ca, **random);
  if (!pem) {
    return complain(pem.error().message());
  }
  if (auto w = platform::write_file_atomic(o.out, *pem, 0644); !w) {
    return complain(w.error().message());
  }
  std::printf("signed %s for node %s: %s\n", o.csr.c_str(), csr->common_name.c_str(),
              o.out.c_str());
  return 0;
}

}  // namespace gridnode::collector
