#pragma once

// A throw-away PKI made with the real `openssl` command, for tests that need a CA and
// certificates: CAs and leaves on EC P-256 signed with SHA-256, any subjectAltName, any
// validity period (also in the past: `openssl ca -startdate/-enddate`, since OpenSSL 3.0's
// `x509` and `req` only take -days). Everything is written under a directory the caller owns
// (a TempDir). A failing openssl command fails the test with its output.
//
//   TempDir dir;
//   test::TestPki pki(dir.path());
//   auto ca = pki.make_ca("ca");
//   auto server = pki.issue("server", ca, {.cn = "collector",
//                                           .san = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"},
//                                           .ext_key_usage = "serverAuth"});
//   Certificate cert = server.cert();  PrivateKey key = server.key();

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "crypto_test_util.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/crypto/x509.hpp"

namespace gridnode::crypto::test {

// A certificate and its key on disk (PEM: "CERTIFICATE" and SEC1 "EC PRIVATE KEY").
struct PkiFiles {
  std::string name;
  std::string cert_path;
  std::string key_path;

  // Parsed with our own code; a failure throws (the test fails with the message).
  Certificate cert() const { return Certificate::load_file(cert_path).value(); }
  PrivateKey key() const { return PrivateKey::from_pem(read_text(key_path)).value(); }
};

struct LeafSpec {
  std::string cn{};                // subject CN
  std::vector<std::string> san{};  // openssl form: "DNS:localhost", "IP:127.0.0.1", "IP:::1"
  std::string ext_key_usage{};     // "serverAuth", "clientAuth", both comma-separated, or none
  std::string not_before{};        // "YYYYMMDDHHMMSSZ" (UTC); empty: now
  std::string not_after{};         // "YYYYMMDDHHMMSSZ" (UTC); empty: now + 30 days
};

class TestPki {
 public:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }

  // A self-signed CA: basicConstraints critical CA:TRUE, keyUsage keyCertSign and cRLSign,
  // valid for ten years from now. `cn` defaults to "<name> CA".
  PkiFiles make_ca(const std::string& name, std::string cn = "") {
    if (cn.empty()) {
      cn = name + " CA";
    }
    PkiFiles f = files(name);
    const std::string conf = path(name + ".req.cnf");
    write_text(conf,
               "[ req ]\n"
               "distinguished_name = dn\n"
               "prompt = no\n"
               "x509_extensions = v3_ca\n"
               "[ dn ]\n"
               "CN = " +
                   cn +
                   "\n"
                   "O = gridnode test\n"
                   "[ v3_ca ]\n"
                   "basicConstraints = critical,CA:TRUE\n"
                   "keyUsage = critical,keyCertSign,cRLSign\n"
                   "subjectKeyIdentifier = hash\n"
                   "authorityKeyIdentifier = keyid:always\n");
    openssl("ecparam -name prime256v1 -genkey -noout -out " + q(f.key_path));
    openssl("req -x509 -new -config " + q(conf) + " -key " + q(f.key_path) +
            " -sha256 -days 3650 -out " + q(f.cert_path));
    // `openssl ca`'s database for the leaves this CA will issue.
    write_text(path(name + ".index"), "");
    write_text(path(name + ".serial"), "1000\n");
    std::error_code ec;
    std::filesystem::create_directories(path(name + ".issued"), ec);
    EXPECT_FALSE(ec) << ec.message();
    return f;
  }

  // A leaf for a fresh P-256 key, issued by `ca`: basicConstraints CA:FALSE, keyUsage
  // digitalSignature, and the spec's subjectAltName, extendedKeyUsage and validity.
  PkiFiles issue(const std::string& name, const PkiFiles& ca, const LeafSpec& spec) {
    PkiFiles f = files(name);
    const std::string csr = path(name + ".csr");
    const std::string req_conf = path(name + ".req.cnf");
    write_text(req_conf, "[ req ]\ndistinguished_name = dn\n[ dn ]\n");
    openssl("ecparam -name prime256v1 -genkey -noout -out " + q(f.key_path));
    openssl("req -new -config " + q(req_conf) + " -key " + q(f.key_path) + " -subj " +
            q("/CN=" + spec.cn) + " -out " + q(csr));

    std::string ext =
        "basicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n";
    if (!spec.san.empty()) {
      std::string san;
      for (const std::string& s : spec.san) {
        san += (san.empty() ? "" : ",") + s;
      }
      ext += "subjectAltName = " + san + "\n";
    }
    if (!spec.ext_key_usage.empty()) {
      ext += "extendedKeyUsage = " + spec.ext_key_usage + "\n";
    }
    const std::string ca_conf = path(name + ".ca.cnf");
    write_text(ca_conf,
               "[ ca ]\n"
               "default_ca = test_ca\n"
               "[ test_ca ]\n"
               "database = " +
                   path(ca.name + ".index") +
                   "\n"
                   "serial = " +
                   path(ca.name + ".serial") +
                   "\n"
                   "new_certs_dir = " +
                   path(ca.name + ".issued") +
                   "\n"
                   "default_md = sha256\n"
                   "policy = policy_any\n"
                   "unique_subject = no\n"
                   "copy_extensions = none\n"
                   "email_in_dn = no\n"
                   "[ policy_any ]\n"
                   "commonName = supplied\n"
                   "[ leaf ]\n" +
                   ext);
    std::string validity;
    if (!spec.not_before.empty()) {
      validity += " -startdate " + spec.not_before;
    }
    if (!spec.not_after.empty()) {
      validity += " -enddate " + spec.not_after;
    } else {
      validity += " -days 30";
    }
    openssl("ca -batch -notext -config " + q(ca_conf) + " -extensions leaf -cert " +
            q(ca.cert_path) + " -keyfile " + q(ca.key_path) + validity + " -in " + q(csr) +
            " -out " + q(f.cert_path));
    return f;
  }

  // SHA-256 of the certificate's SubjectPublicKeyInfo DER, computed by openssl (the pin an
  // operator would compute).
  Digest spki_sha256(const PkiFiles& f) {
    CommandResult r = run_command("openssl x509 -in " + q(f.cert_path) +
                                  " -pubkey -noout | openssl pkey -pubin -outform der | "
                                  "openssl dgst -sha256 -r");
    EXPECT_EQ(r.status, 0) << r.output;
    return digest_from_hex(r.output.substr(0, 64)).value();
  }

 private:
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  PkiFiles files(const std::string& name) const {
    return PkiFiles{name, path(name + ".crt"), path(name + ".key")};
  }
  static std::string q(const std::string& s) { return shell_quote(s); }

  std::string dir_;
};

}  // namespace gridnode::crypto::test
