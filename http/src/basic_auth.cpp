// exporter-toolkit's basic_auth_users: `Authorization: Basic base64(user:password)` checked
// against bcrypt hashes with libxcrypt's crypt_r (no bcrypt of our own), as web/handler.go
// does it: a fixed dummy hash for an unknown user so that timing does not tell which users
// exist, and a cache of checked (user, password, hash) triples (their SHA-256, never the
// password) so that a scrape every second pays bcrypt once, not every second.
//
// The check runs on the server's loop: an uncached bcrypt at cost 10 takes tens of
// milliseconds, so uncached checks are budgeted (kChecksPerSecond); beyond it a request gets
// 429 without a check, and cached credentials (Prometheus scraping) never touch the budget.

#include <crypt.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>

#include "gridnode/crypto/base64.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/http/web_config.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode::http {
namespace {

using Clock = std::chrono::steady_clock;

// exporter-toolkit's dummy: bcrypt (cost 10) of "fakepassword".
constexpr const char* kDummyHash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
constexpr std::size_t kCacheEntries = 64;
constexpr int kChecksPerSecond = 10;
constexpr int kLogLinesPerWindow = 5;
constexpr std::chrono::seconds kLogWindow{10};

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  volatile unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

struct Credentials {
  std::string user;
  std::string password;
};

// Go's Request.BasicAuth: "Basic " (any case), standard base64, split at the first ':'.
std::optional<Credentials> parse_basic(std::string_view header) {
  constexpr std::string_view kScheme = "Basic ";
  if (header.size() < kScheme.size() || !iequals(header.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  auto raw = crypto::from_base64(header.substr(kScheme.size()));
  if (!raw) {
    return std::nullopt;
  }
  std::string text(raw->begin(), raw->end());
  std::fill(raw->begin(), raw->end(), 0);
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  Credentials c{text.substr(0, colon), text.substr(colon + 1)};
  std::fill(text.begin(), text.end(), '\0');
  return c;
}

class BasicAuth {
 public:
  BasicAuth(std::map<std::string, std::string> users, std::string component, std::string realm)
      : users_(std::move(users)),
        component_(std::move(component)),
        challenge_("Basic realm=\"" + std::move(realm) + "\""),
        data_(std::make_unique<crypt_data>()) {}

  bool check(const Request& request, Response& response) {
    auto creds = parse_basic(request.header("Authorization"));
    if (!creds) {
      warn(request, "", request.header("Authorization").empty() ? "no credentials"
                                                                : "malformed Authorization header");
      return refuse(response, 401);
    }
    auto it = users_.find(creds->user);
    const bool known = it != users_.end();
    const std::string& hash = known ? it->second : dummy_;
    const crypto::Digest key = cache_key(*creds, hash);
    bool ok = false;
    if (auto cached = find(key); cached) {
      ok = *cached;
    } else {
      if (!take_budget()) {
        warn(request, creds->user, "too many password checks, answered 429 unchecked");
        response.headers.push_back(Header{"Retry-After", "1"});
        return refuse(response, 429);
      }
      ok = verify(creds->password, hash);
      remember(key, ok);
    }
    wipe(creds->password);
    if (ok && known) {
      return true;
    }
    warn(request, creds->user, known ? "wrong password" : "unknown user");
    return refuse(response, 401);
  }

 private:
  static void wipe(std::string& s) {
    volatile char* p = s.data();
    for (std::size_t i = 0; i < s.size(); ++i) {
      p[i] = 0;
    }
  }

  static crypto::Digest cache_key(const Credentials& c, const std::string& hash) {
    // Lengths first, so that no two triples share a key.
    std::string material;
    material.reserve(c.user.size() + c.password.size() + hash.size() + 32);
    for (const std::string* part : {&c.user, &c.password, &hash}) {
      material += std::to_string(part->size());
      material += ':';
      material += *part;
    }
    crypto::Digest d = crypto::sha256(material);
    wipe(material);
    return d;
  }

  // Successes and failures are kept apart, so that a client trying many passwords pushes out
  // only other failures, never the scraper's remembered success.
  std::optional<bool> find(const crypto::Digest& key) const {
    if (std::find(passed_.begin(), passed_.end(), key) != passed_.end()) {
      return true;
    }
    if (std::find(failed_.begin(), failed_.end(), key) != failed_.end()) {
      return false;
    }
    return std::nullopt;
  }

  void remember(const crypto::Digest& key, bool ok) {
    std::deque<crypto::Digest>& list = ok ? passed_ : failed_;
    if (list.size() >= kCacheEntries) {
      list.pop_front();
    }
    list.push_back(key);
  }

  bool verify(const std::string& password, const std::string& hash) {
    if (password.find('\0') != std::string::npos) {
      return false;  // crypt_r would check the part before the NUL only
    }
    std::memset(data_.get(), 0, sizeof(crypt_data));
    const char* out = crypt_r(password.c_str(), hash.c_str(), data_.get());
    // libxcrypt answers a failure with a string starting with '*', never a valid hash.
    const bool ok = out != nullptr && out[0] == '$' && equal_constant_time(out, hash);
    std::memset(data_.get(), 0, sizeof(crypt_data));
    return ok;
  }

  bool take_budget() {
    const auto now = Clock::now();
    if (now - budget_start_ >= std::chrono::seconds(1)) {
      budget_start_ = now;
      budget_used_ = 0;
    }
    if (budget_used_ >= kChecksPerSecond) {
      return false;
    }
    ++budget_used_;
    return true;
  }

  bool refuse(Response& response, int status) {
    response.status = status;
    response.content_type = "text/plain; charset=utf-8";
    response.body = status == 401 ? "Unauthorized\n" : "Too Many Requests\n";
    if (status == 401) {
      response.headers.push_back(Header{"WWW-Authenticate", challenge_});
    }
    return false;
  }

  // At most kLogLinesPerWindow lines per kLogWindow; the next line counts what was left out.
  void warn(const Request& request, const std::string& user, const char* why) {
    const auto now = Clock::now();
    if (now - log_start_ >= kLogWindow) {
      log_start_ = now;
      log_lines_ = 0;
    }
    if (log_lines_ >= kLogLinesPerWindow) {
      ++suppressed_;
      return;
    }
    ++log_lines_;
    platform::LogLine line("basic auth refused a request");
    line.kv("reason", why).kv("client", request.remote);
    if (!user.empty()) {
      line.kv("user", user);
    }
    if (suppressed_ > 0) {
      line.kv("suppressed", static_cast<std::int64_t>(suppressed_));
      suppressed_ = 0;
    }
    platform::log(platform::Level::warning, component_, line);
  }

  std::map<std::string, std::string> users_;
  std::string component_;
  std::string challenge_;
  std::string dummy_ = kDummyHash;
  std::unique_ptr<crypt_data> data_;  // about 32 KiB: on the heap, reused
  std::deque<crypto::Digest> passed_;  // SHA-256 of (user, password, hash) that checked out
  std::deque<crypto::Digest> failed_;  // ... and that did not
  Clock::time_point budget_start_{};
  int budget_used_ = 0;
  Clock::time_point log_start_{};
  int log_lines_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace

std::function<bool(const Request&, Response&)> make_basic_auth(
    std::map<std::string, std::string> users, std::string component, std::string realm) {
  if (users.empty()) {
    return [](const Request&, Response&) { return true; };
  }
  auto auth = std::make_shared<BasicAuth>(std::move(users), std::move(component), std::move(realm));
  return [auth](const Request& request, Response& response) {
    return auth->check(request, response);
  };
}

}  // namespace gridnode::http
