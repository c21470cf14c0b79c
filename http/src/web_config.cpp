// exporter-toolkit's web configuration file, read with libyaml's document API (its marks give
// the line of every key), checked as exporter-toolkit checks it (web/tls_config.go,
// web/handler.go), and refused with file, line and key named where we cannot do what it asks.
// docs/web.md lists what is accepted and why the rest is refused.

#include "gridnode/http/web_config.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "gridnode/crypto/tls.hpp"
#include "gridnode/platform/files.hpp"

namespace gridnode::http {
namespace {

static_assert(static_cast<int>(ClientAuth::require_and_verify_client_cert) ==
                  static_cast<int>(crypto::WebClientAuth::require_and_verify_client_cert) &&
              static_cast<int>(ClientAuth::request_client_cert) ==
                  static_cast<int>(crypto::WebClientAuth::request_client_cert) &&
              static_cast<int>(ClientAuth::require_any_client_cert) ==
                  static_cast<int>(crypto::WebClientAuth::require_any_client_cert) &&
              static_cast<int>(ClientAuth::verify_client_cert_if_given) ==
                  static_cast<int>(crypto::WebClientAuth::verify_client_cert_if_given),
              "ClientAuth and crypto::WebClientAuth list the modes in the same order");

using platform::Result;

constexpr std::size_t kMaxConfigBytes = 1 << 20;
constexpr std::size_t kMaxPemBytes = 1 << 20;

// exporter-toolkit's keys that we know and cannot honour, with why (the message's tail).
struct Unsupported {
  std::string_view key;
  std::string_view why;
};
constexpr Unsupported kUnsupportedTls[] = {
    {"cert", "give the certificate in a file (cert_file)"},
    {"key", "give the key in a file (key_file)"},
    {"client_ca", "give the client CAs in a file (client_ca_file)"},
    {"cipher_suites",
     "the suites are fixed: ECDHE-ECDSA/RSA with AES-GCM or ChaCha20-Poly1305 (docs/web.md)"},
    {"curve_preferences", "the groups are fixed: X25519, P-256, P-384, P-521"},
    {"client_allowed_sans", "client certificates are not matched by subjectAltName"},
};
constexpr Unsupported kUnsupportedTop[] = {
    {"rate_limit", "the agent bounds connections itself (docs/web.md)"},
};

// exporter-toolkit's extraHTTPHeaders: the only headers it lets a file set, and for two of
// them the only values (compared exactly, as Go's map lookup does).
struct AllowedHeader {
  std::string_view name;
  std::array<std::string_view, 2> values;  // empty: any value
};
constexpr AllowedHeader kAllowedHeaders[] = {
    {"Strict-Transport-Security", {}},
    {"X-Content-Type-Options", {"nosniff", {}}},
    {"X-Frame-Options", {"deny", "sameorigin"}},
    {"X-XSS-Protection", {}},
    {"Content-Security-Policy", {}},
};

struct Document {
  yaml_document_t doc{};
  bool loaded = false;
  ~Document() {
    if (loaded) {
      yaml_document_delete(&doc);
    }
  }
};

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {
    dir_ = std::filesystem::path(path_).parent_path();
    if (dir_.empty()) {
      dir_ = ".";
    }
  }

  Result<WebConfig> read();

 private:
  std::string at(const yaml_node_t* node) const {
    return path_ + ":" + std::to_string(node->start_mark.line + 1);
  }
  tl::unexpected<platform::Error> refuse(const yaml_node_t* node, const std::string& what) const {
    return platform::fail(std::errc::invalid_argument, at(node) + ": " + what);
  }
  yaml_node_t* node(int index) { return yaml_document_get_node(&doc_.doc, index); }
  static std::string scalar(const yaml_node_t* n) {
    return std::string(reinterpret_cast<const char*>(n->data.scalar.value), n->data.scalar.length);
  }
  // A plain `key:` with nothing after it (YAML null), which Go reads as the zero value.
  static bool is_null(const yaml_node_t* n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
      return false;
    }
    std::string_view v(reinterpret_cast<const char*>(n->data.scalar.value), n->data.scalar.length);
    return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL";
  }

  // Walks a mapping: for each pair calls f(name, key node, value node); refuses non-string
  // keys and keys given twice (yaml.v2's UnmarshalStrict refuses those too).
  template <class F>
  Result<void> each_pair(const yaml_node_t* map, const std::string& where, F&& f);
  Result<std::string> string_value(const yaml_node_t* value, const std::string& key);
  Result<bool> bool_value(const yaml_node_t* value, const std::string& key);
  Result<std::string> file_value(const yaml_node_t* value, const std::string& key);

  Result<void> read_tls(const yaml_node_t* map, const yaml_node_t* key_node, WebConfig& out);
  Result<void> read_http(const yaml_node_t* map, WebConfig& out);
  Result<void> read_users(const yaml_node_t* map, WebConfig& out);

  std::string path_;
  std::filesystem::path dir_;
  Document doc_;
};

template <class F>
Result<void> Reader::each_pair(const yaml_node_t* map, const std::string& where, F&& f) {
  std::vector<std::pair<std::string, std::size_t>> seen;
  for (yaml_node_pair_t* p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; ++p) {
    yaml_node_t* k = node(p->key);
    yaml_node_t* v = node(p->value);
    if (k == nullptr || v == nullptr) {
      return platform::fail(std::errc::invalid_argument, path_ + ": broken YAML document");
    }
    if (k->type != YAML_SCALAR_NODE) {
      return refuse(k, "a key of " + (where.empty() ? std::string("the file") : where) +
                           " is not a string");
    }
    std::string name = scalar(k);
    const std::string full = where.empty() ? name : where + "." + name;
    auto dup =
        std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == name; });
    if (dup != seen.end()) {
      return refuse(k, "key " + full + " is given twice (first on line " +
                           std::to_string(dup->second) + ")");
    }
    seen.emplace_back(name, k->start_mark.line + 1);
    if (auto ok = f(name, full, k, v); !ok) {
      return ok;
    }
  }
  return {};
}

Result<std::string> Reader::string_value(const yaml_node_t* value, const std::string& key) {
  if (is_null(value)) {
    return std::string();
  }
  if (value->type != YAML_SCALAR_NODE) {
    return refuse(value, key + " must be a string");
  }
  return scalar(value);
}

Result<bool> Reader::bool_value(const yaml_node_t* value, const std::string& key) {
  if (value->type == YAML_SCALAR_NODE && value->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
    // YAML 1.1's booleans, as yaml.v2 reads them.
    static constexpr std::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                                 "on",   "On",   "ON"};
    static constexpr std::string_view kFalse[] = {"false", "False", "FALSE", "no", "No", "NO",
                                                  "off",   "Off",   "OFF"};
    const std::string v = scalar(value);
    if (std::find(std::begin(kTrue), std::end(kTrue), v) != std::end(kTrue)) {
      return true;
    }
    if (std::find(std::begin(kFalse), std::end(kFalse), v) != std::end(kFalse)) {
      return false;
    }
  }
  return refuse(value, key + " must be true or false");
}

// A path, made absolute against the config file's folder (exporter-toolkit's JoinDir), that
// names a readable regular file.
Result<std::string> Reader::file_value(const yaml_node_t* value, const std::string& key) {
  auto text = string_value(value, key);
  if (!text || text->empty()) {
    return text;
  }
  std::filesystem::path p(*text);
  if (p.is_relative()) {
    p = dir_ / p;
  }
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(p, ec).lexically_normal();
  if (ec) {
    abs = p;
  }
  const std::string s = abs.string();
  struct stat st {};
  if (::stat(s.c_str(), &st) != 0) {
    return refuse(value, key + " " + s + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return refuse(value, key + " " + s + " is not a regular file");
  }
  if (::access(s.c_str(), R_OK) != 0) {
    return refuse(value, key + " " + s + ": " + std::strerror(errno));
  }
  return s;
}

const Unsupported* find_unsupported(std::span<const Unsupported> list, std::string_view key) {
  for (const Unsupported& u : list) {
    if (u.key == key) {
      return &u;
    }
  }
  return nullptr;
}

std::optional<ClientAuth> parse_client_auth(std::string_view v) {
  if (v.empty() || v == "NoClientCert") {
    return ClientAuth::no_client_cert;
  }
  if (v == "RequestClientCert") {
    return ClientAuth::request_client_cert;
  }
  if (v == "RequireAnyClientCert" || v == "RequireClientCert") {  // the old name, kept by them
    return ClientAuth::require_any_client_cert;
  }
  if (v == "VerifyClientCertIfGiven") {
    return ClientAuth::verify_client_cert_if_given;
  }
  if (v == "RequireAndVerifyClientCert") {
    return ClientAuth::require_and_verify_client_cert;
  }
  return std::nullopt;
}

bool is_bcrypt_hash(std::string_view h) {
  // $2a$ / $2b$ / $2y$, a two-digit cost 04..31, '$', 22 salt and 31 hash characters.
  if (h.size() != 60 || h.substr(0, 2) != "$2" ||
      (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' || h[6] != '$') {
    return false;
  }
  if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9') {
    return false;
  }
  const int cost = (h[4] - '0') * 10 + (h[5] - '0');
  if (cost < 4 || cost > 31) {
    return false;
  }
  return std::all_of(h.begin() + 7, h.end(), [](char c) {
    return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z');
  });
}

Result<void> Reader::read_tls(const yaml_node_t* map, const yaml_node_t* key_node,
                              WebConfig& out) {
  if (is_null(map)) {
    return {};
  }
  if (map->type != YAML_MAPPING_NODE) {
    return refuse(map, "tls_server_config must be a mapping");
  }
  WebTlsConfig tls;
  bool enabled = false;
  const yaml_node_t* auth_node = nullptr;
  const yaml_node_t* ca_node = nullptr;
  auto ok = each_pair(map, "tls_server_config", [&](const std::string& name,
                                                    const std::string& full, yaml_node_t* k,
                                                    yaml_node_t* v) -> Result<void> {
    if (name == "cert_file" || name == "key_file" || name == "client_ca_file") {
      auto file = file_value(v, full);
      if (!file) {
        return tl::unexpected(file.error());
      }
      (name == "cert_file" ? tls.cert_file
                           : name == "key_file" ? tls.key_file : tls.client_ca_file) = *file;
      enabled = enabled || !file->empty();
      if (name == "client_ca_file") {
        ca_node = k;
      }
    } else if (name == "client_auth_type") {
      auto text = string_value(v, full);
      if (!text) {
        return tl::unexpected(text.error());
      }
      auto mode = parse_client_auth(*text);
      if (!mode) {
        return refuse(v, "tls_server_config.client_auth_type \"" + *text +
                             "\" is not one of NoClientCert, RequestClientCert, "
                             "RequireAnyClientCert, VerifyClientCertIfGiven, "
                             "RequireAndVerifyClientCert");
      }
      tls.client_auth = *mode;
      enabled = enabled || !text->empty();
      auth_node = k;
    } else if (name == "min_version" || name == "max_version") {
      auto text = string_value(v, full);
      if (!text) {
        return tl::unexpected(text.error());
      }
      if (*text != "TLS10" && *text != "TLS11" && *text != "TLS12" && *text != "TLS13") {
        return refuse(v, full + " \"" + *text + "\" is not one of TLS10, TLS11, TLS12, TLS13");
      }
      if (name == "min_version" && *text == "TLS13") {
        return refuse(v,
                      "tls_server_config.min_version TLS13 cannot be met: the agent's TLS library "
                      "(mbedTLS 2.28) speaks TLS 1.2 only; use TLS12");
      }
      if (name == "max_version" && (*text == "TLS10" || *text == "TLS11")) {
        return refuse(v, "tls_server_config.max_version " + *text +
                             " cannot be met: the agent speaks TLS 1.2 only");
      }
      if (name == "min_version") {
        tls.min_version = *text;
      }
    } else if (name == "prefer_server_cipher_suites") {
      auto b = bool_value(v, full);
      if (!b) {
        return tl::unexpected(b.error());
      }
      if (!*b) {
        return refuse(k, "key tls_server_config.prefer_server_cipher_suites: false is not "
                         "supported (the agent always picks the suite in its own order)");
      }
    } else if (const Unsupported* u = find_unsupported(kUnsupportedTls, name); u != nullptr) {
      return refuse(k, "key " + full + " is not supported (" + std::string(u->why) + ")");
    } else {
      return refuse(k, "key " + full + " is not supported (exporter-toolkit has no such key)");
    }
    return {};
  });
  if (!ok) {
    return ok;
  }
  if (!enabled) {
    return {};  // exporter-toolkit: no TLS field set means plain HTTP
  }
  if (tls.cert_file.empty()) {
    return refuse(key_node, "tls_server_config has no cert_file (TLS needs one, with key_file)");
  }
  if (tls.key_file.empty()) {
    return refuse(key_node, "tls_server_config has no key_file (TLS needs one, with cert_file)");
  }
  const bool verifies = tls.client_auth == ClientAuth::verify_client_cert_if_given ||
                        tls.client_auth == ClientAuth::require_and_verify_client_cert;
  if (verifies && tls.client_ca_file.empty()) {
    return refuse(auth_node, "tls_server_config.client_auth_type " +
                                 std::string(crypto::client_auth_name(
                                     static_cast<crypto::WebClientAuth>(tls.client_auth))) +
                                 " needs client_ca_file (the CAs client certificates must chain "
                                 "to)");
  }
  if (!tls.client_ca_file.empty() && tls.client_auth == ClientAuth::no_client_cert) {
    return refuse(ca_node,
                  "tls_server_config.client_ca_file is set but client_auth_type is "
                  "NoClientCert (exporter-toolkit refuses a client CA without a client auth "
                  "policy)");
  }
  out.tls = std::move(tls);
  return {};
}

Result<void> Reader::read_http(const yaml_node_t* map, WebConfig& out) {
  if (is_null(map)) {
    return {};
  }
  if (map->type != YAML_MAPPING_NODE) {
    return refuse(map, "http_server_config must be a mapping");
  }
  return each_pair(map, "http_server_config", [&](const std::string& name,
                                                  const std::string& full, yaml_node_t* k,
                                                  yaml_node_t* v) -> Result<void> {
    if (name == "http2") {
      // Go's default is true: HTTP/2 allowed, never required. The agent serves HTTP/1.1,
      // which every client falls back to, so either value is met.
      auto b = bool_value(v, full);
      return b ? Result<void>{} : tl::unexpected(b.error());
    }
    if (name != "headers") {
      return refuse(k, "key " + full + " is not supported (exporter-toolkit has no such key)");
    }
    if (is_null(v)) {
      return {};
    }
    if (v->type != YAML_MAPPING_NODE) {
      return refuse(v, "http_server_config.headers must be a mapping of header names to values");
    }
    return each_pair(v, full, [&](const std::string& header, const std::string& hfull,
                                  yaml_node_t* hk, yaml_node_t* hv) -> Result<void> {
      auto value = string_value(hv, hfull);
      if (!value) {
        return tl::unexpected(value.error());
      }
      const AllowedHeader* allowed = nullptr;
      for (const AllowedHeader& a : kAllowedHeaders) {
        if (a.name == header) {
          allowed = &a;
        }
      }
      if (allowed == nullptr) {
        return refuse(hk, "HTTP header \"" + header +
                              "\" can not be configured (exporter-toolkit allows "
                              "Strict-Transport-Security, X-Content-Type-Options, "
                              "X-Frame-Options, X-XSS-Protection, Content-Security-Policy)");
      }
      if (!allowed->values[0].empty() &&
          std::find(allowed->values.begin(), allowed->values.end(), *value) ==
              allowed->values.end()) {
        std::string expected = "\"" + std::string(allowed->values[0]) + "\"";
        if (!allowed->values[1].empty()) {
          expected += " or \"" + std::string(allowed->values[1]) + "\"";
        }
        return refuse(hv, "invalid value \"" + *value + "\" for HTTP header " + header +
                              ": expected " + expected);
      }
      if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return refuse(hv, "the value of HTTP header " + header + " holds a line break");
      }
      out.headers.push_back(Header{header, *value});
      return {};
    });
  });
}

Result<void> Reader::read_users(const yaml_node_t* map, WebConfig& out) {
  if (is_null(map)) {
    return {};
  }
  if (map->type != YAML_MAPPING_NODE) {
    return refuse(map, "basic_auth_users must be a mapping of user names to bcrypt hashes");
  }
  return each_pair(map, "basic_auth_users", [&](const std::string& user, const std::string& full,
                                                yaml_node_t*, yaml_node_t* v) -> Result<void> {
    auto hash = string_value(v, full);
    if (!hash) {
      return tl::unexpected(hash.error());
    }
    if (!is_bcrypt_hash(*hash)) {
      // The hash itself is not printed: it may be a password pasted by mistake.
      return refuse(v, "the password hash of basic_auth_users user \"" + user +
                           "\" is not a bcrypt hash ($2y$, $2b$ or $2a$, cost 04 to 31, 60 "
                           "characters; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)");
    }
    out.basic_auth_users[user] = *hash;
    return {};
  });
}

Result<WebConfig> Reader::read() {
  std::string text;
  if (auto ok = platform::read_file(path_, text, kMaxConfigBytes); !ok) {
    return tl::unexpected(ok.error());
  }
  WebConfig out;
  out.path = path_;

  yaml_parser_t parser;
  if (yaml_parser_initialize(&parser) == 0) {
    return platform::fail(std::errc::not_enough_memory, path_ + ": yaml_parser_initialize");
  }
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  const int loaded = yaml_parser_load(&parser, &doc_.doc);
  if (loaded == 0) {
    std::string why = path_ + ":" + std::to_string(parser.problem_mark.line + 1) + ":" +
                      std::to_string(parser.problem_mark.column + 1) + ": YAML error: " +
                      (parser.problem != nullptr ? parser.problem : "unreadable");
    if (parser.context != nullptr) {
      why += std::string(" ") + parser.context;
    }
    yaml_parser_delete(&parser);
    return platform::fail(std::errc::invalid_argument, why);
  }
  doc_.loaded = true;
  // A second document in the file ("---" twice) is not read by exporter-toolkit either; we
  // refuse it rather than ignore it.
  yaml_document_t next;
  const int more = yaml_parser_load(&parser, &next);
  bool second = false;
  if (more != 0) {
    second = yaml_document_get_root_node(&next) != nullptr;
    const std::size_t line = next.start_mark.line + 1;
    yaml_document_delete(&next);
    if (second) {
      yaml_parser_delete(&parser);
      return platform::fail(std::errc::invalid_argument,
                            path_ + ":" + std::to_string(line) +
                                ": a second YAML document; the web config is one document");
    }
  }
  yaml_parser_delete(&parser);

  yaml_node_t* root = yaml_document_get_root_node(&doc_.doc);
  if (root == nullptr || is_null(root)) {
    return out;  // an empty file: plain HTTP, no authentication, no headers
  }
  if (root->type != YAML_MAPPING_NODE) {
    return refuse(root, "the web config must be a mapping (tls_server_config, "
                        "http_server_config, basic_auth_users)");
  }
  auto ok = each_pair(root, "", [&](const std::string& name, const std::string& full,
                                    yaml_node_t* k, yaml_node_t* v) -> Result<void> {
    if (name == "tls_server_config") {
      return read_tls(v, k, out);
    }
    if (name == "http_server_config") {
      return read_http(v, out);
    }
    if (name == "basic_auth_users") {
      return read_users(v, out);
    }
    if (const Unsupported* u = find_unsupported(kUnsupportedTop, name); u != nullptr) {
      return refuse(k, "key " + full + " is not supported (" + std::string(u->why) + ")");
    }
    return refuse(k, "key " + full + " is not supported (exporter-toolkit has no such key)");
  });
  if (!ok) {
    return tl::unexpected(ok.error());
  }
  return out;
}

Result<std::string> read_pem(const std::string& key, const std::string& path) {
  std::string text;
  if (auto ok = platform::read_file(path, text, kMaxPemBytes); !ok) {
    return platform::fail(ok.error().code, "tls_server_config." + key + " " + ok.error().context);
  }
  return text;
}

}  // namespace

Result<WebConfig> read_web_config(const std::string& path) { return Reader(path).read(); }

Result<std::shared_ptr<crypto::TlsContext>> make_tls_context(const WebTlsConfig& tls) {
  crypto::WebServerTlsOptions options;
  auto cert = read_pem("cert_file", tls.cert_file);
  if (!cert) {
    return tl::unexpected(cert.error());
  }
  auto key = read_pem("key_file", tls.key_file);
  if (!key) {
    return tl::unexpected(key.error());
  }
  options.cert_chain_pem = std::move(*cert);
  options.key_pem = std::move(*key);
  options.client_auth = static_cast<crypto::WebClientAuth>(tls.client_auth);
  if (!tls.client_ca_file.empty()) {
    auto ca = read_pem("client_ca_file", tls.client_ca_file);
    if (!ca) {
      return tl::unexpected(ca.error());
    }
    options.client_ca_pem = std::move(*ca);
    options.client_ca_name = "client_ca_file " + tls.client_ca_file;
  }
  if (tls.min_version == "TLS13") {
    options.min_version = crypto::WebTlsVersion::tls13;  // refused by create_web_server
  } else if (tls.min_version == "TLS10") {
    options.min_version = crypto::WebTlsVersion::tls10;
  } else if (tls.min_version == "TLS11") {
    options.min_version = crypto::WebTlsVersion::tls11;
  }
  auto ctx = crypto::TlsContext::create_web_server(std::move(options));
  if (!ctx) {
    auto e = ctx.error();
    e.context = "tls_server_config (cert_file " + tls.cert_file + ", key_file " + tls.key_file +
                "): " + e.context;
    return tl::unexpected(std::move(e));
  }
  return ctx;
}

}  // namespace gridnode::http
