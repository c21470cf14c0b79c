// Integration with the tools operators already use: our signatures, keys, CSRs and
// certificates against the real `openssl` command, both ways round ("the signature must verify
// with stock tools given the node's certificate"). Skipped where openssl is not installed.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "crypto_test_util.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "temp_dir.hpp"

namespace gridnode::crypto {
namespace {

using test::openssl;
using test::run_command;
using testing::TempDir;

std::string q(const std::string& s) { return test::shell_quote(s); }

class OpensslInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    GRIDNODE_REQUIRE_OPENSSL();
    random_ = Random::create("openssl_interop_test").value();
    key_.emplace(PrivateKey::generate(*random_).value());
  }

  // A CA key and self-signed CA certificate made by openssl; returns the certificate's path.
  std::string make_ca(const std::string& name, int days) {
    const std::string key = dir_ / (name + ".key"), crt = dir_ / (name + ".crt");
    openssl("ecparam -name prime256v1 -genkey -noout -out " + q(key));
    openssl("req -x509 -new -key " + q(key) + " -subj " + q("/CN=" + name + "/O=gridnode") +
            " -days " + std::to_string(days) + " -out " + q(crt));
    return crt;
  }

  // Our CSR for key_, signed by CA `ca` with openssl; returns the certificate's path.
  std::string issue(const std::string& ca, int days, const std::string& name = "node") {
    const std::string csr = dir_ / (name + ".csr"), crt = dir_ / (name + ".crt");
    test::write_text(csr, write_csr_pem(*key_, "CN=node-17,O=gridnode", *random_).value());
    const std::string ca_key = ca.substr(0, ca.size() - 4) + ".key";
    openssl("x509 -req -in " + q(csr) + " -CA " + q(ca) + " -CAkey " + q(ca_key) +
            " -CAcreateserial -sha256 -days " + std::to_string(days) + " -out " + q(crt));
    return crt;
  }

  TempDir dir_;
  std::unique_ptr<Random> random_;
  std::optional<PrivateKey> key_;
};

TEST_F(OpensslInterop, OurSignaturesVerifyWithOpensslDgst) {
  const std::string pub = dir_ / "pub.pem";
  test::write_text(pub, key_->public_key().to_pem().value());
  std::vector<std::string> messages = {"", "a report", std::string(600, '\x5a')};
  std::string binary;
  for (int i = 0; i < 600; ++i) {
    binary += static_cast<char>(i * 7);
  }
  messages.push_back(binary);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string msg = dir_ / ("msg" + std::to_string(i)),
                      sig = dir_ / ("sig" + std::to_string(i) + ".der");
    test::write_text(msg, messages[i]);
    Signature raw = key_->sign(sha256(messages[i]), *random_).value();
    test::write_bytes(sig, signature_to_der(raw).value());
    auto r = run_command("openssl dgst -sha256 -verify " + q(pub) + " -signature " + q(sig) + " " +
                         q(msg));
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Verified OK"), std::string::npos) << r.output;

    test::write_text(msg, messages[i] + "!");
    r = run_command("openssl dgst -sha256 -verify " + q(pub) + " -signature " + q(sig) + " " +
                    q(msg));
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Verification failure"), std::string::npos) << r.output;
  }
}

TEST_F(OpensslInterop, OpensslSignaturesVerifyWithUs) {
  const std::string key = dir_ / "theirs.key", pub = dir_ / "theirs.pub";
  openssl("ecparam -name prime256v1 -genkey -noout -out " + q(key));
  openssl("pkey -in " + q(key) + " -pubout -out " + q(pub));
  PublicKey theirs = PublicKey::from_pem(test::read_text(pub)).value();
  // openssl's key loads as ours too, with the same public half.
  EXPECT_EQ(PrivateKey::from_pem(test::read_text(key)).value().public_key(), theirs);
  // 24 signatures: some r or s start with a 0 or >= 0x80 octet, exercising every DER length.
  for (int i = 0; i < 24; ++i) {
    const std::string body = "message " + std::to_string(i);
    const std::string msg = dir_ / "msg", sig = dir_ / "sig.der";
    test::write_text(msg, body);
    openssl("dgst -sha256 -sign " + q(key) + " -out " + q(sig) + " " + q(msg));
    auto raw = signature_from_der(test::read_bytes(sig));
    ASSERT_TRUE(raw) << raw.error().message();
    EXPECT_TRUE(theirs.verify(sha256(body), *raw)) << i;
    EXPECT_FALSE(theirs.verify(sha256(body + "!"), *raw)) << i;
    EXPECT_FALSE(key_->public_key().verify(sha256(body), *raw)) << i;
    // Our DER of their signature is byte for byte theirs (both minimal DER).
    EXPECT_EQ(signature_to_der(*raw).value(), test::read_bytes(sig));
  }
}

TEST_F(OpensslInterop, OpensslReadsOurKeys) {
  const std::string ours = dir_ / "ours.key";
  ASSERT_TRUE(write_private_key_file(ours, *key_));
  std::string out = openssl("ec -in " + q(ours) + " -check -noout");
  EXPECT_NE(out.find("EC Key valid"), std::string::npos) << out;
  EXPECT_EQ(openssl("pkey -in " + q(ours) + " -pubout"), key_->public_key().to_pem().value());
  const std::string der = dir_ / "pub.der";
  openssl("pkey -in " + q(ours) + " -pubout -outform DER -out " + q(der));
  EXPECT_EQ(test::read_bytes(der), key_->public_key().to_der().value());
  out = openssl("ec -in " + q(ours) + " -text -noout");
  EXPECT_NE(out.find("prime256v1"), std::string::npos) << out;
}

TEST_F(OpensslInterop, CsrIsAcceptedAndItsCertificateVerifies) {
  const std::string csr = dir_ / "node.csr";
  std::string pem = write_csr_pem(*key_, "CN=node-17,O=gridnode", *random_).value();
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE REQUEST-----", 0), 0u) << pem;
  test::write_text(csr, pem);
  auto r = run_command("openssl req -verify -noout -in " + q(csr));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("verify OK"), std::string::npos) << r.output;
  std::string subject = openssl("req -noout -subject -in " + q(csr));
  EXPECT_NE(subject.find("CN = node-17"), std::string::npos) << subject;
  EXPECT_NE(subject.find("O = gridnode"), std::string::npos) << subject;
  std::string text = openssl("req -noout -text -in " + q(csr));
  EXPECT_NE(text.find("ecdsa-with-SHA256"), std::string::npos) << text;

  const std::string ca_path = make_ca("grid-ca", 90);
  const std::string crt_path = issue(ca_path, 60);
  auto cert = Certificate::load_file(crt_path);
  ASSERT_TRUE(cert) << cert.error().message();
  auto ca = Certificate::load_file(ca_path);
  ASSERT_TRUE(ca) << ca.error().message();

  EXPECT_EQ(cert->common_name(), "node-17");
  EXPECT_EQ(cert->subject(), "CN=node-17, O=gridnode");
  EXPECT_EQ(ca->common_name(), "grid-ca");
  EXPECT_EQ(cert->public_key(), key_->public_key());
  EXPECT_EQ(PublicKey::from_pem(openssl("x509 -in " + q(crt_path) + " -pubkey -noout")).value(),
            cert->public_key());
  EXPECT_EQ(cert->not_after() - cert->not_before(), 60 * 86400);
  EXPECT_EQ(ca->not_after() - ca->not_before(), 90 * 86400);
  // Our reading of the validity period agrees with openssl's and date(1)'s.
  std::string end = openssl("x509 -in " + q(crt_path) + " -noout -enddate");  // notAfter=...
  ASSERT_EQ(end.rfind("notAfter=", 0), 0u) << end;
  end = end.substr(9, end.find('\n') - 9);
  auto seconds = run_command("date -u -d " + q(end) + " +%s");
  ASSERT_EQ(seconds.status, 0) << seconds.output;
  EXPECT_EQ(std::to_string(cert->not_after()) + "\n", seconds.output) << end;

  const std::int64_t now = cert->not_before() + 3600;
  auto ok = cert->verify_issued_by(*ca, now);
  EXPECT_TRUE(ok) << ok.error().message();
  EXPECT_TRUE(ca->verify_issued_by(*ca, now));  // a self-signed root

  // A different CA with the same name and a different key.
  TempDir other;
  const std::string ca2_key = other / "ca.key", ca2_crt = other / "ca.crt";
  openssl("ecparam -name prime256v1 -genkey -noout -out " + q(ca2_key));
  openssl("req -x509 -new -key " + q(ca2_key) + " -subj /CN=grid-ca/O=gridnode -days 30 -out " +
          q(ca2_crt));
  auto ca2 = Certificate::load_file(ca2_crt).value();
  auto bad = cert->verify_issued_by(ca2, now);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code.category(), mbedtls_category());
  EXPECT_NE(bad.error().context.find("not correctly signed"), std::string::npos)
      << bad.error().message();

  bad = cert->verify_issued_by(*ca, cert->not_after() + 1);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context.find("expired"), std::string::npos) << bad.error().message();
  bad = cert->verify_issued_by(*ca, cert->not_before() - 1);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context.find("future"), std::string::npos) << bad.error().message();
  EXPECT_TRUE(cert->verify_issued_by(*ca, cert->not_after()));  // the last valid second

  // A node certificate that outlives its CA: past the CA's end, the chain is not valid.
  const std::string short_ca_path = make_ca("short-ca", 30);
  auto short_ca = Certificate::load_file(short_ca_path).value();
  auto outliving = Certificate::load_file(issue(short_ca_path, 60, "outliving")).value();
  EXPECT_TRUE(outliving.verify_issued_by(short_ca, short_ca.not_after()));
  bad = outliving.verify_issued_by(short_ca, short_ca.not_after() + 10);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context.find("CA certificate"), std::string::npos) << bad.error().message();

  // A leaf is no CA.
  EXPECT_FALSE(cert->verify_issued_by(*cert, now));

  // DER form, and a PEM bundle (first certificate wins).
  const std::string der_path = dir_ / "node.der";
  openssl("x509 -in " + q(crt_path) + " -outform DER -out " + q(der_path));
  auto from_der = Certificate::load_file(der_path);
  ASSERT_TRUE(from_der) << from_der.error().message();
  EXPECT_EQ(from_der->subject(), cert->subject());
  std::vector<std::uint8_t> der_bytes = test::read_bytes(der_path);
  EXPECT_EQ(std::vector<std::uint8_t>(from_der->der().begin(), from_der->der().end()), der_bytes);
  const std::string bundle = dir_ / "bundle.pem";
  test::write_text(bundle, test::read_text(crt_path) + test::read_text(ca_path));
  EXPECT_EQ(Certificate::load_file(bundle).value().common_name(), "node-17");

  // Trailing bytes after a DER certificate are refused.
  der_bytes.push_back(0);
  EXPECT_FALSE(Certificate::from_der(der_bytes));
}

TEST_F(OpensslInterop, ForeignAndBrokenCertificatesAreRefused) {
  const std::string rsa = dir_ / "rsa.crt", p384 = dir_ / "p384.crt", p256 = dir_ / "p256.crt";
  openssl("req -x509 -newkey rsa:1024 -nodes -keyout " + q(dir_ / "rsa.key") +
          " -subj /CN=rsa-node -days 1 -out " + q(rsa));
  openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -keyout " +
          q(dir_ / "p384.key") + " -subj /CN=p384-node -days 1 -out " + q(p384));
  openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
          q(dir_ / "p256.key") + " -subj /CN=p256-node -days 1 -out " + q(p256));

  auto r = Certificate::load_file(rsa);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::invalid_argument);
  EXPECT_NE(r.error().context.find(rsa), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().context.find("RSA"), std::string::npos) << r.error().message();
  r = Certificate::load_file(p384);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("secp384r1"), std::string::npos) << r.error().message();
  ASSERT_TRUE(Certificate::load_file(p256)) << "a good one, for contrast";

  std::string good = test::read_text(p256);
  for (const std::string& text :
       {std::string(), std::string("hello\n"), good.substr(0, good.size() / 2),
        good.substr(0, good.size() - 30) + "-----END CERTIFICATE-----\n",
        std::string("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
        std::string("\x30\x82\x01\x00garbage", 11)}) {
    const std::string path = dir_ / "broken.crt";
    test::write_text(path, text);
    auto b = Certificate::load_file(path);
    EXPECT_FALSE(b) << text;
    if (!b) {
      EXPECT_NE(b.error().context.find(path), std::string::npos) << b.error().message();
    }
  }
  auto missing = Certificate::load_file(dir_ / "missing.crt");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, std::errc::no_such_file_or_directory);
}

TEST_F(OpensslInterop, CsrSubjectErrors) {
  EXPECT_FALSE(write_csr_pem(*key_, "", *random_));
  EXPECT_FALSE(write_csr_pem(*key_, "XX=unknown-attribute", *random_));
  EXPECT_FALSE(write_csr_pem(*key_, std::string_view("CN=a\0b", 6), *random_));
}

}  // namespace
}  // namespace gridnode::crypto
