#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gridnode/platform/files.hpp"
#include "temp_dir.hpp"

namespace gridnode::platform {
namespace {

using gridnode::testing::TempDir;

class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::size_t entries(const std::string& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) {
    ++n;
  }
  return n;
}

TEST(WriteFileAtomic, WritesExactModeWhateverTheUmask) {
  TempDir dir;
  {
    ScopedUmask mask(0);
    ASSERT_TRUE(write_file_atomic(dir / "a", "alpha\n", 0600));
    EXPECT_EQ(mode_of(dir / "a"), 0600u);
  }
  {
    ScopedUmask mask(077);
    ASSERT_TRUE(write_file_atomic(dir / "b", "beta", 0644));
    EXPECT_EQ(mode_of(dir / "b"), 0644u);
  }
  EXPECT_EQ(slurp(dir / "a"), "alpha\n");
  EXPECT_EQ(slurp(dir / "b"), "beta");
  EXPECT_EQ(entries(dir.path()), 2u);  // no temporary files left behind
}

TEST(WriteFileAtomic, ReplacesContentAndMode) {
  TempDir dir;
  const std::string path = dir / "chain";
  ASSERT_TRUE(write_file_atomic(path, std::string(10000, 'x'), 0644));
  ASSERT_TRUE(write_file_atomic(path, "short", 0600));
  EXPECT_EQ(slurp(path), "short");
  EXPECT_EQ(mode_of(path), 0600u);
  ASSERT_TRUE(write_file_atomic(path, "", 0600));
  EXPECT_EQ(slurp(path), "");
  std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(write_file_atomic(path, binary, 0600));
  EXPECT_EQ(slurp(path), binary);
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(WriteFileAtomic, ReplacesASymlinkRatherThanWritingThroughIt) {
  TempDir dir;
  const std::string target = dir / "target";
  const std::string link = dir / "link";
  ASSERT_TRUE(write_file_atomic(target, "original", 0644));
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  ASSERT_TRUE(write_file_atomic(link, "new", 0600));
  EXPECT_EQ(slurp(target), "original");
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(slurp(link), "new");
}

TEST(WriteFileAtomic, ReportsErrorsWithThePath) {
  TempDir dir;
  auto r = write_file_atomic(dir / "missing/file", "x", 0600);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  EXPECT_NE(r.error().context.find("missing/file"), std::string::npos) << r.error().message();

  ASSERT_EQ(::mkdir((dir / "sub").c_str(), 0700), 0);
  r = write_file_atomic(dir / "sub", "x", 0600);  // a directory is in the way
  ASSERT_FALSE(r);
  EXPECT_EQ(entries(dir / "sub"), 0u);
  EXPECT_EQ(entries(dir.path()), 1u);  // the temporary file was removed

  EXPECT_EQ(write_file_atomic(dir / "", "x", 0600).error().code, std::errc::invalid_argument);
  EXPECT_EQ(write_file_atomic("", "x", 0600).error().code, std::errc::invalid_argument);
}

TEST(WriteFileAtomic, RelativePathInTheWorkingDirectory) {
  TempDir dir;
  char old[4096];
  ASSERT_NE(::getcwd(old, sizeof old), nullptr);
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  auto r = write_file_atomic("plain", "here", 0600);
  ASSERT_EQ(::chdir(old), 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(slurp(dir / "plain"), "here");
}

TEST(CreateFileAtomic, NeverReplaces) {
  TempDir dir;
  const std::string path = dir / "node.csr";
  ASSERT_TRUE(create_file_atomic(path, "first", 0644));
  EXPECT_EQ(mode_of(path), 0644u);
  auto r = create_file_atomic(path, "second", 0644);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::file_exists);
  EXPECT_NE(r.error().context.find(path), std::string::npos);
  EXPECT_EQ(slurp(path), "first");
  // Dangling symlink: exists as a name, so refused, and nothing is created at its target.
  ASSERT_EQ(::symlink((dir / "nowhere").c_str(), (dir / "dangling").c_str()), 0);
  EXPECT_EQ(create_file_atomic(dir / "dangling", "x", 0600).error().code, std::errc::file_exists);
  EXPECT_NE(::access((dir / "nowhere").c_str(), F_OK), 0);
  EXPECT_EQ(entries(dir.path()), 2u);  // node.csr and dangling, no temporary files
}

}  // namespace
}  // namespace gridnode::platform
