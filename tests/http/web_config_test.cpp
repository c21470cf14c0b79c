// exporter-toolkit's web config file as read_web_config reads it: real files in a temp dir,
// every key we cannot honour refused with the file, its line and the key named.

#include "gridnode/http/web_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "temp_dir.hpp"

namespace gridnode::http {
namespace {

using ::testing::HasSubstr;

// exporter-toolkit's test user carol (web/testdata/web_config_users_noTLS.good.yml).
constexpr const char* kCarolHash = "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu";

class WebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"server.crt", "server.key", "ca.crt"}) {
      write(f, "not read by read_web_config\n");
    }
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }
  platform::Result<WebConfig> read(const std::string& text) {
    path_ = write("web.yml", text);
    return read_web_config(path_);
  }
  // The error's message, or a failure when the file was accepted.
  std::string refusal(const std::string& text) {
    auto c = read(text);
    EXPECT_FALSE(c) << text;
    return c ? std::string() : c.error().message();
  }

  testing::TempDir dir_;
  std::string path_;
};

TEST_F(WebConfigTest, EmptyFileAndCommentsOnlyAreThePlainDefaults) {
  for (const std::string text : {"", "# nothing here\n", "---\n", "~\n"}) {
    auto c = read(text);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_FALSE(c->tls);
    EXPECT_TRUE(c->basic_auth_users.empty());
    EXPECT_TRUE(c->headers.empty());
    EXPECT_EQ(c->path, path_);
  }
}

TEST_F(WebConfigTest, FullFileIsReadWithPathsRelativeToItsFolder) {
  auto c = read(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: " + (dir_ / "server.key") + "\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  client_ca_file: ./ca.crt\n"
      "  min_version: TLS12\n"
      "  max_version: TLS13\n"
      "  prefer_server_cipher_suites: true\n"
      "http_server_config:\n"
      "  http2: false\n"
      "  headers:\n"
      "    X-Frame-Options: deny\n"
      "    Strict-Transport-Security: max-age=31536000\n"
      "    X-Content-Type-Options: nosniff\n"
      "basic_auth_users:\n"
      "  carol: " + std::string(kCarolHash) + "\n"
      "  'dave': \"$2b$04$abcdefghijklmnopqrstuu5ZHd8y4MxzgWzoEwcCrc1c2qhAwSc3C\"\n");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_TRUE(c->tls);
  EXPECT_EQ(c->tls->cert_file, dir_ / "server.crt");
  EXPECT_EQ(c->tls->key_file, dir_ / "server.key");
  EXPECT_EQ(c->tls->client_ca_file, dir_ / "ca.crt");
  EXPECT_EQ(c->tls->client_auth, ClientAuth::require_and_verify_client_cert);
  EXPECT_EQ(c->tls->min_version, "TLS12");
  ASSERT_EQ(c->headers.size(), 3u);
  EXPECT_EQ(c->headers[0].name, "X-Frame-Options");
  EXPECT_EQ(c->headers[0].value, "deny");
  ASSERT_EQ(c->basic_auth_users.size(), 2u);
  EXPECT_EQ(c->basic_auth_users.at("carol"), kCarolHash);
}

TEST_F(WebConfigTest, ClientAuthTypesAndTheOldRequireClientCertName) {
  const std::pair<std::string, ClientAuth> cases[] = {
      {"NoClientCert", ClientAuth::no_client_cert},
      {"RequestClientCert", ClientAuth::request_client_cert},
      {"RequireAnyClientCert", ClientAuth::require_any_client_cert},
      {"RequireClientCert", ClientAuth::require_any_client_cert},
      {"VerifyClientCertIfGiven", ClientAuth::verify_client_cert_if_given},
      {"RequireAndVerifyClientCert", ClientAuth::require_and_verify_client_cert},
  };
  for (const auto& [name, mode] : cases) {
    const std::string ca = mode == ClientAuth::no_client_cert ? "" : "  client_ca_file: ca.crt\n";
    auto c = read("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + ca +
                  "  client_auth_type: " + name + "\n");
    ASSERT_TRUE(c) << name << ": " << c.error().message();
    ASSERT_TRUE(c->tls);
    EXPECT_EQ(c->tls->client_auth, mode) << name;
  }
}

TEST_F(WebConfigTest, EveryUnsupportedKeyIsRefusedWithItsLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"  cert: PEM", "tls_server_config.cert"},
      {"  key: PEM", "tls_server_config.key"},
      {"  client_ca: PEM", "tls_server_config.client_ca"},
      {"  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]",
       "tls_server_config.cipher_suites"},
      {"  curve_preferences: [X25519]", "tls_server_config.curve_preferences"},
      {"  client_allowed_sans: [a.example]", "tls_server_config.client_allowed_sans"},
      {"  certfile: server.crt", "tls_server_config.certfile"},
  };
  for (const auto& [line, key] : cases) {
    const std::string msg =
        refusal("# a comment\ntls_server_config:\n  cert_file: server.crt\n" + line +
                "\n  key_file: server.key\n");
    EXPECT_THAT(msg, HasSubstr(path_ + ":4: key " + key + " is not supported")) << msg;
  }
  EXPECT_THAT(refusal("basic_auth_users: {}\nrate_limit:\n  burst: 10\n"),
              HasSubstr(":2: key rate_limit is not supported"));
  EXPECT_THAT(refusal("\n\nweb_config: 1\n"), HasSubstr(":3: key web_config is not supported"));
  EXPECT_THAT(refusal("http_server_config:\n  http3: true\n"),
              HasSubstr(":2: key http_server_config.http3 is not supported"));
  EXPECT_THAT(refusal("tls_server_config:\n  prefer_server_cipher_suites: false\n"),
              HasSubstr(":2: key tls_server_config.prefer_server_cipher_suites: false is not "
                        "supported"));
}

TEST_F(WebConfigTest, BadValuesAreRefusedClearly) {
  const std::string tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  EXPECT_THAT(refusal(tls + "  client_auth_type: RequireSomething\n"),
              HasSubstr(":4: tls_server_config.client_auth_type \"RequireSomething\" is not one "
                        "of"));
  EXPECT_THAT(refusal("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n"),
              HasSubstr(":2: tls_server_config.cert_file " + (dir_ / "missing.crt") +
                        ": No such file or directory"));
  EXPECT_THAT(refusal("tls_server_config:\n  cert_file: server.crt\n"),
              HasSubstr(":1: tls_server_config has no key_file"));
  EXPECT_THAT(refusal("tls_server_config:\n  key_file: server.key\n"),
              HasSubstr(":1: tls_server_config has no cert_file"));
  EXPECT_THAT(refusal(tls + "  client_auth_type: VerifyClientCertIfGiven\n"),
              HasSubstr(":4: tls_server_config.client_auth_type VerifyClientCertIfGiven needs "
                        "client_ca_file"));
  EXPECT_THAT(refusal(tls + "  client_auth_type: RequireAndVerifyClientCert\n"),
              HasSubstr("RequireAndVerifyClientCert needs client_ca_file"));
  EXPECT_THAT(refusal(tls + "  client_ca_file: ca.crt\n"),
              HasSubstr(":4: tls_server_config.client_ca_file is set but client_auth_type is "
                        "NoClientCert"));
  EXPECT_THAT(refusal(tls + "  min_version: TLS13\n"),
              HasSubstr(":4: tls_server_config.min_version TLS13 cannot be met"));
  EXPECT_THAT(refusal(tls + "  min_version: SSL3\n"),
              HasSubstr(":4: tls_server_config.min_version \"SSL3\" is not one of"));
  EXPECT_THAT(refusal(tls + "  max_version: TLS11\n"),
              HasSubstr(":4: tls_server_config.max_version TLS11 cannot be met"));
  EXPECT_THAT(refusal(tls + "  cert_file: other.crt\n"),
              HasSubstr(":4: key tls_server_config.cert_file is given twice (first on line 2)"));
  EXPECT_THAT(refusal("tls_server_config:\n  cert_file: [a, b]\n"),
              HasSubstr(":2: tls_server_config.cert_file must be a string"));
  EXPECT_THAT(refusal("tls_server_config: yes\n"),
              HasSubstr(":1: tls_server_config must be a mapping"));
  EXPECT_THAT(refusal("- a\n- b\n"), HasSubstr(":1: the web config must be a mapping"));
  EXPECT_THAT(refusal("tls_server_config:\n  cert_file: 'unterminated\n"),
              HasSubstr("YAML error"));
  EXPECT_THAT(refusal("a: 1\n---\nb: 2\n"), HasSubstr(":2: a second YAML document"));
  EXPECT_THAT(refusal("http_server_config:\n  http2: maybe\n"),
              HasSubstr(":2: http_server_config.http2 must be true or false"));
}

TEST_F(WebConfigTest, MinVersionFloorsBelowTls12AreAccepted) {
  for (const char* v : {"TLS10", "TLS11", "TLS12"}) {
    auto c = read(std::string("tls_server_config:\n  cert_file: server.crt\n  key_file: "
                              "server.key\n  min_version: ") + v + "\n");
    ASSERT_TRUE(c) << v << ": " << c.error().message();
    EXPECT_EQ(c->tls->min_version, v);
  }
}

TEST_F(WebConfigTest, HeadersFollowExporterToolkitsAllowList) {
  EXPECT_THAT(refusal("http_server_config:\n  headers:\n    X-Powered-By: gridnode\n"),
              HasSubstr(":3: HTTP header \"X-Powered-By\" can not be configured"));
  EXPECT_THAT(refusal("http_server_config:\n  headers:\n    Content-Type: text/html\n"),
              HasSubstr("HTTP header \"Content-Type\" can not be configured"));
  EXPECT_THAT(refusal("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
              HasSubstr(":3: invalid value \"allow\" for HTTP header X-Frame-Options: expected "
                        "\"deny\" or \"sameorigin\""));
  EXPECT_THAT(refusal("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n"),
              HasSubstr("expected \"nosniff\""));
  // No response splitting through a value.
  EXPECT_THAT(refusal("http_server_config:\n  headers:\n    Content-Security-Policy: "
                      "\"a\\r\\nSet-Cookie: x\"\n"),
              HasSubstr(":3: the value of HTTP header Content-Security-Policy holds a line break"));
  // Names are matched exactly, as exporter-toolkit's map lookup does.
  EXPECT_THAT(refusal("http_server_config:\n  headers:\n    x-frame-options: deny\n"),
              HasSubstr("can not be configured"));
  auto c = read(
      "http_server_config:\n  http2: true\n  headers:\n    Content-Security-Policy: "
      "\"default-src 'self'\"\n    X-XSS-Protection: 1; mode=block\n");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->headers.size(), 2u);
  EXPECT_EQ(c->headers[0].value, "default-src 'self'");
  EXPECT_EQ(c->headers[1].value, "1; mode=block");
}

TEST_F(WebConfigTest, PasswordHashesMustBeBcrypt) {
  for (const std::string bad : {
           "plaintext",
           "$1$abcdefgh$0123456789abcdefghijkl",                                  // MD5-crypt
           "$2x$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu",        // $2x$
           "$2y$03$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu",        // cost 3
           "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTu",         // short
           "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTu!",        // alphabet
       }) {
    const std::string msg = refusal("basic_auth_users:\n  alice: '" + bad + "'\n");
    EXPECT_THAT(msg, HasSubstr(":2: the password hash of basic_auth_users user \"alice\" is not a "
                               "bcrypt hash"))
        << bad;
    EXPECT_THAT(msg, ::testing::Not(HasSubstr(bad))) << "the hash is not echoed";
  }
  for (const char* prefix : {"$2a$", "$2b$", "$2y$"}) {
    auto c = read(std::string("basic_auth_users:\n  carol: ") + prefix + (kCarolHash + 4) + "\n");
    EXPECT_TRUE(c) << prefix;
  }
}

TEST_F(WebConfigTest, MissingConfigFileIsNamed) {
  auto c = read_web_config(dir_ / "nope.yml");
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message(), HasSubstr(dir_ / "nope.yml"));
}

}  // namespace
}  // namespace gridnode::http
