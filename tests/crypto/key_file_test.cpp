#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "crypto_test_util.hpp"
#include "gridnode/crypto/keys.hpp"
#include "temp_dir.hpp"

namespace gridnode::crypto {
namespace {

using testing::TempDir;

// Sets the process umask for one test and puts the old one back.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    random_ = Random::create("key_file_test").value();
    key_.emplace(PrivateKey::generate(*random_).value());
  }
  std::string too_open(const std::string& path, const char* mode) {
    return std::string("permissions ") + mode + " for '" + path +
           "' are too open: the node key must be readable by its owner only (chmod 600 '" + path +
           "')";
  }
  TempDir dir_;
  std::unique_ptr<Random> random_;
  std::optional<PrivateKey> key_;
};

TEST_F(KeyFile, WritesMode0600EvenWithUmaskZero) {
  ScopedUmask mask(0);
  const std::string path = dir_ / "node.key";
  auto w = write_private_key_file(path, *key_);
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_EQ(mode_of(path), 0600u);
  std::string text = test::read_text(path);
  EXPECT_EQ(text.rfind("-----BEGIN EC PRIVATE KEY-----", 0), 0u);
  auto back = load_private_key_file(path);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->public_key(), key_->public_key());
  // Nothing else left in the directory (no temporary file).
  EXPECT_EQ(test::run_command("ls -A " + test::shell_quote(dir_.path())).output, "node.key\n");
}

TEST_F(KeyFile, RefusesToOverwriteUnlessAsked) {
  const std::string path = dir_ / "node.key";
  ASSERT_TRUE(write_private_key_file(path, *key_));
  const std::string before = test::read_text(path);
  PrivateKey other = PrivateKey::generate(*random_).value();
  auto again = write_private_key_file(path, other);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, std::errc::file_exists);
  EXPECT_NE(again.error().context.find(path), std::string::npos) << again.error().message();
  EXPECT_EQ(test::read_text(path), before);

  // A dangling symlink at the path is not written through either.
  const std::string link = dir_ / "link.key";
  ASSERT_EQ(::symlink((dir_ / "elsewhere").c_str(), link.c_str()), 0);
  EXPECT_EQ(write_private_key_file(link, other).error().code, std::errc::file_exists);
  EXPECT_NE(::access((dir_ / "elsewhere").c_str(), F_OK), 0);

  auto replaced = write_private_key_file(path, other, /*overwrite=*/true);
  ASSERT_TRUE(replaced) << replaced.error().message();
  EXPECT_EQ(load_private_key_file(path).value().public_key(), other.public_key());
  EXPECT_EQ(mode_of(path), 0600u);
}

TEST_F(KeyFile, RefusesGroupOrWorldAccessLikeSsh) {
  const std::string path = dir_ / "node.key";
  ASSERT_TRUE(write_private_key_file(path, *key_));
  for (auto [mode, text] : {std::pair<mode_t, const char*>{0644, "0644"},
                            {0640, "0640"},
                            {0604, "0604"},
                            {0660, "0660"},
                            {0602, "0602"}}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = load_private_key_file(path);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, std::errc::permission_denied);
    EXPECT_EQ(r.error().context, too_open(path, text));
  }
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = load_private_key_file(path);
    EXPECT_TRUE(r) << std::oct << mode << ": " << r.error().message();
  }
}

TEST_F(KeyFile, FollowsSymlinksButJudgesTheTarget) {
  const std::string target = dir_ / "real.key";
  const std::string link = dir_ / "node.key";
  ASSERT_TRUE(write_private_key_file(target, *key_));
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_EQ(load_private_key_file(link).value().public_key(), key_->public_key());
  ASSERT_EQ(::chmod(target.c_str(), 0644), 0);
  auto r = load_private_key_file(link);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::permission_denied);
  EXPECT_EQ(r.error().context, too_open(link, "0644"));
}

TEST_F(KeyFile, RefusesNonRegularMissingAndGarbage) {
  auto r = load_private_key_file(dir_ / "missing.key");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  EXPECT_NE(r.error().context.find("missing.key"), std::string::npos);

  r = load_private_key_file(dir_.path());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::invalid_argument);
  EXPECT_NE(r.error().context.find("not a regular file"), std::string::npos);

  // A FIFO must not hang the loader in open(2).
  const std::string fifo = dir_ / "fifo.key";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  r = load_private_key_file(fifo);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::invalid_argument);

  const std::string garbage = dir_ / "garbage.key";
  test::write_text(garbage, "not a key\n");
  ASSERT_EQ(::chmod(garbage.c_str(), 0600), 0);
  r = load_private_key_file(garbage);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find(garbage), std::string::npos) << r.error().message();

  const std::string empty = dir_ / "empty.key";
  test::write_text(empty, "");
  ASSERT_EQ(::chmod(empty.c_str(), 0600), 0);
  EXPECT_FALSE(load_private_key_file(empty));

  const std::string big = dir_ / "big.key";
  test::write_text(big, std::string(100 * 1024, 'A'));
  ASSERT_EQ(::chmod(big.c_str(), 0600), 0);
  r = load_private_key_file(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::file_too_large);
}

TEST_F(KeyFile, RefusesAFileOwnedBySomeoneElse) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a file to another uid";
  }
  const std::string path = dir_ / "node.key";
  ASSERT_TRUE(write_private_key_file(path, *key_));
  ASSERT_EQ(::chown(path.c_str(), 4242, 4242), 0);
  auto r = load_private_key_file(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::permission_denied);
  EXPECT_NE(r.error().context.find("uid 4242"), std::string::npos) << r.error().message();
  // Owned by root is fine (we are root here).
  ASSERT_EQ(::chown(path.c_str(), 0, 0), 0);
  EXPECT_TRUE(load_private_key_file(path));
}

TEST_F(KeyFile, WriteFailsCleanlyInAMissingDirectory) {
  auto w = write_private_key_file(dir_ / "no/such/dir/node.key", *key_);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, std::errc::no_such_file_or_directory);
}

}  // namespace
}  // namespace gridnode::crypto
