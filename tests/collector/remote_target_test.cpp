#include "gridnode/collector/remote_target.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.hpp"

namespace gridnode::collector {
namespace {

TEST(ClassifyResponse, FollowsTheRemoteWriteSpecAndKeepsDataOnConfigurationErrors) {
  EXPECT_EQ(classify_response(200), Outcome::delivered);
  EXPECT_EQ(classify_response(204), Outcome::delivered);
  EXPECT_EQ(classify_response(0), Outcome::retry);  // no answer: connect, TLS, timeout
  EXPECT_EQ(classify_response(500), Outcome::retry);
  EXPECT_EQ(classify_response(503), Outcome::retry);
  EXPECT_EQ(classify_response(429), Outcome::retry);  // the spec: MAY retry
  EXPECT_EQ(classify_response(401), Outcome::refused);
  EXPECT_EQ(classify_response(403), Outcome::refused);
  EXPECT_EQ(classify_response(404), Outcome::refused);
  EXPECT_EQ(classify_response(407), Outcome::refused);
  EXPECT_EQ(classify_response(301), Outcome::refused);
  EXPECT_EQ(classify_response(400), Outcome::dropped);  // the spec: MUST NOT retry
  EXPECT_EQ(classify_response(413), Outcome::dropped);
  EXPECT_EQ(classify_response(422), Outcome::dropped);
}

TEST(RemoteWriteConfig, ReadsTargetsWithSecretsFromFilesAndDefaults) {
  testing::TempDir dir;
  std::ofstream(dir / "pw") << "s3cret\n";
  std::ofstream(dir / "token") << "tok";
  RemoteTarget defaults;
  defaults.job = "grid";
  const std::string text = "[[remote_write]]\nurl = \"http://127.0.0.1:8428/api/v1/write\"\n"
                           "username = \"grid\"\npassword_file = \"" + (dir / "pw") + "\"\n"
                           "resend_window = 12.5\nmax_samples_per_request = 100\n\n"
                           "[[remote_write]]\nname = \"mimir\"\nurl = \"https://m:9009/push\"\n"
                           "bearer_token_file = \"" + (dir / "token") + "\"\nca_file = \"/ca\"\n"
                           "job = \"other\"\n";
  auto t = parse_remote_write_config(text, "rw.toml", defaults);
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].password, "s3cret");
  EXPECT_EQ((*t)[0].username, "grid");
  EXPECT_EQ((*t)[0].job, "grid");
  EXPECT_EQ((*t)[0].resend_window.count(), 12500);
  EXPECT_EQ((*t)[0].max_samples, 100u);
  EXPECT_EQ((*t)[0].name, default_target_name("http://127.0.0.1:8428/api/v1/write"));
  EXPECT_EQ((*t)[1].name, "mimir");
  EXPECT_EQ((*t)[1].bearer_token, "tok");
  EXPECT_EQ((*t)[1].ca_file, "/ca");
  EXPECT_EQ((*t)[1].job, "other");
}

TEST(RemoteWriteConfig, RefusesWithFileLineAndKey) {
  const RemoteTarget d;
  auto unknown = parse_remote_write_config(
      "[[remote_write]]\nurl = \"http://a/w\"\npasword_file = \"x\"\n", "rw.toml", d);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().context, "rw.toml:3: unknown key pasword_file");
  auto table = parse_remote_write_config("[remote]\nurl = \"http://a/w\"\n", "rw.toml", d);
  ASSERT_FALSE(table);
  EXPECT_EQ(table.error().context, "rw.toml:1: the only table here is [[remote_write]]");
  auto ascii = parse_remote_write_config("[[remote_write]]\nurl = \"http://\xc3\xbc/w\"\n", "f", d);
  ASSERT_FALSE(ascii);
  EXPECT_EQ(ascii.error().context, "f:2: only ASCII is taken here");
  EXPECT_FALSE(parse_remote_write_config("[[remote_write]]\nurl = \"ftp://a\"\n", "f", d));
  EXPECT_FALSE(parse_remote_write_config("", "f", d));
  EXPECT_FALSE(parse_remote_write_config("[[remote_write]]\nurl = \"http://a/w\"\n"
                                         "password_file = \"/nonexistent/pw\"\n", "f", d));
  EXPECT_FALSE(parse_remote_write_config(
      "[[remote_write]]\nurl = \"http://a/w\"\n[[remote_write]]\nurl = \"http://a/w\"\n", "f", d));
}

TEST(RemoteWriteFlags, UrlsAndTheFileTogetherOneNameEach) {
  RemoteWriteFlags f;
  f.urls = {"http://127.0.0.1:8428/api/v1/write", "http://user:pw@h:9090/api/v1/write"};
  f.job = "j";
  f.resend_window_s = 0;
  auto t = make_remote_targets(f);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].job, "j");
  EXPECT_EQ((*t)[0].resend_window.count(), 0);
  EXPECT_TRUE((*t)[0].name.starts_with("127.0.0.1_8428-"));
  EXPECT_TRUE((*t)[1].name.starts_with("h_9090-")) << (*t)[1].name;  // never the password
  f.urls.push_back(f.urls[0]);
  EXPECT_FALSE(make_remote_targets(f));
  f.urls = {"127.0.0.1:8428"};
  EXPECT_FALSE(make_remote_targets(f));
}

}  // namespace
}  // namespace gridnode::collector
