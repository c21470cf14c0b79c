// make_basic_auth against bcrypt hashes made by libxcrypt itself and exporter-toolkit's own
// test hashes: 401 and its challenge, the dummy hash for unknown users, the cache, the budget of
// uncached checks, and the log line (the user and client named, never the password).

#include <crypt.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "gridnode/crypto/base64.hpp"
#include "gridnode/http/web_config.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// exporter-toolkit's test users (web/testdata/web_config_users_noTLS.good.yml): carol123, dave123.
constexpr const char* kCarolHash = "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu";
constexpr const char* kDaveHash = "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq";

// A $2b$ hash of `password` at `cost`, made by libxcrypt.
std::string bcrypt(const std::string& password, int cost) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2b$", cost, nullptr, 0, salt, sizeof salt), nullptr);
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_r(password.c_str(), salt, data.get());
  EXPECT_NE(out, nullptr);
  return out;
}

Request request(const std::string& authorization) {
  Request r;
  r.method = "GET";
  r.path = "/metrics";
  r.remote = "127.0.0.1:40000";
  if (!authorization.empty()) {
    r.headers.push_back(Header{"Authorization", authorization});
  }
  return r;
}

std::string basic(const std::string& user_colon_password) {
  std::string out = "Basic ";
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(user_colon_password.data());
  crypto::append_base64(std::span<const std::uint8_t>(bytes, user_colon_password.size()), out);
  return out;
}

struct Outcome {
  bool allowed;
  Response response;
  std::chrono::microseconds took;
};

Outcome ask(const std::function<bool(const Request&, Response&)>& auth, const std::string& header) {
  Outcome o{};
  const auto start = Clock::now();
  o.allowed = auth(request(header), o.response);
  o.took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  return o;
}

std::string header_of(const Response& r, const std::string& name) {
  for (const Header& h : r.headers) {
    if (h.name == name) {
      return h.value;
    }
  }
  return "";
}

TEST(BasicAuth, ExporterToolkitHashesCheckWithCryptR) {
  auto auth = make_basic_auth({{"carol", kCarolHash}, {"dave", kDaveHash}}, "test");
  EXPECT_TRUE(ask(auth, basic("carol:carol123")).allowed);
  EXPECT_TRUE(ask(auth, basic("dave:dave123")).allowed);
  EXPECT_FALSE(ask(auth, basic("carol:dave123")).allowed);
  EXPECT_FALSE(ask(auth, basic("dave:carol123")).allowed);
}

TEST(BasicAuth, RefusalsAre401WithTheChallenge) {
  auto auth = make_basic_auth({{"prometheus", bcrypt("s3cret:with colon", 4)}}, "test");
  EXPECT_TRUE(ask(auth, basic("prometheus:s3cret:with colon")).allowed);
  EXPECT_TRUE(ask(auth, "bAsIc " + basic("prometheus:s3cret:with colon").substr(6)).allowed);
  for (const std::string& header :
       {std::string(), std::string("Bearer abc"), std::string("Basic !!!notbase64"),
        basic("no colon here"), basic("prometheus:wrong"), basic("nobody:s3cret:with colon"),
        basic("prometheus:s3cret:with colon\n"), basic(std::string("prometheus:s3cret\0x", 19))}) {
    Outcome o = ask(auth, header);
    EXPECT_FALSE(o.allowed) << header;
    EXPECT_EQ(o.response.status, 401) << header;
    EXPECT_EQ(header_of(o.response, "WWW-Authenticate"), "Basic realm=\"gridnode\"");
  }
  auto other = make_basic_auth({{"p", bcrypt("x", 4)}}, "test", "node-7");
  EXPECT_EQ(header_of(ask(other, "").response, "WWW-Authenticate"), "Basic realm=\"node-7\"");
}

TEST(BasicAuth, NoUsersLetsEveryoneThrough) {
  auto auth = make_basic_auth({}, "test");
  EXPECT_TRUE(ask(auth, "").allowed);
  EXPECT_TRUE(ask(auth, basic("a:b")).allowed);
}

TEST(BasicAuth, SuccessIsRememberedAndUnknownUsersPayBcryptToo) {
  // Cost 12: a quarter of a second or so per check, far above a cache lookup.
  auto auth = make_basic_auth({{"prometheus", bcrypt("pw", 12)}}, "test");
  Outcome first = ask(auth, basic("prometheus:pw"));
  ASSERT_TRUE(first.allowed);
  Outcome again = ask(auth, basic("prometheus:pw"));
  ASSERT_TRUE(again.allowed);
  EXPECT_GT(first.took.count(), 50'000);
  EXPECT_LT(again.took.count(), 10'000) << "a remembered success does not run bcrypt";
  // An unknown user is checked against exporter-toolkit's dummy (cost 10): not answered at once.
  Outcome unknown = ask(auth, basic("nobody:pw"));
  EXPECT_FALSE(unknown.allowed);
  EXPECT_GT(unknown.took.count(), 10'000) << "an unknown user runs bcrypt on the dummy hash";
  // The dummy's own password does not let an unknown user in.
  EXPECT_FALSE(ask(auth, basic("nobody:fakepassword")).allowed);
  // A password change (another hash for the same password) is a new check.
  auto changed = make_basic_auth({{"prometheus", bcrypt("pw2", 4)}}, "test");
  EXPECT_FALSE(ask(changed, basic("prometheus:pw")).allowed);
}

TEST(BasicAuth, UncachedChecksAreBudgetedButARememberedSuccessIsNot) {
  auto auth = make_basic_auth({{"prometheus", bcrypt("pw", 4)}}, "test");
  ASSERT_TRUE(ask(auth, basic("prometheus:pw")).allowed);
  int refused_429 = 0;
  for (int i = 0; i < 30; ++i) {
    Outcome o = ask(auth, basic("prometheus:guess" + std::to_string(i)));
    EXPECT_FALSE(o.allowed);
    if (o.response.status == 429) {
      ++refused_429;
      EXPECT_EQ(header_of(o.response, "Retry-After"), "1");
    } else {
      EXPECT_EQ(o.response.status, 401);
    }
  }
  EXPECT_GE(refused_429, 10) << "at most 10 uncached checks a second";
  // The scraper's remembered success still gets through at once, and is not pushed out of the
  // cache by the guesses.
  Outcome o = ask(auth, basic("prometheus:pw"));
  EXPECT_TRUE(o.allowed);
  EXPECT_EQ(o.response.status, 200);
}

TEST(BasicAuth, RefusalsAreLoggedWithUserAndClientNeverThePassword) {
  platform::Log::set_threshold(platform::Level::debug);
  auto auth = make_basic_auth({{"prometheus", bcrypt("pw", 4)}}, "web");
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 8; ++i) {
    ask(auth, basic("prometheus:hunter" + std::to_string(i)));
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("user=prometheus"));
  EXPECT_THAT(log, HasSubstr("client=127.0.0.1:40000"));
  EXPECT_THAT(log, HasSubstr("wrong password"));
  EXPECT_THAT(log, Not(HasSubstr("hunter")));
  int lines = 0;
  for (char c : log) {
    lines += c == '\n';
  }
  EXPECT_EQ(lines, 5) << "at most 5 lines in 10 s:\n" << log;
}

}  // namespace
}  // namespace gridnode::http
