#include "gridnode/platform/fd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "gridnode/platform/files.hpp"
#include "temp_dir.hpp"

namespace gridnode::platform {
namespace {

using gridnode::testing::TempDir;

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesWhenItGoesAndNotWhenReleased) {
  int raw = -1;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));

  UniqueFd kept(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  raw = kept.release();
  EXPECT_FALSE(kept.valid());
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

TEST(UniqueFd, MovesOwnershipAndResetClosesTheOldOne) {
  UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int first = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is the test
  EXPECT_EQ(b.get(), first);
  b.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_NE(b.get(), first);  // opened while `first` was still open
  EXPECT_FALSE(is_open(first));
  UniqueFd c;
  c = std::move(b);
  EXPECT_TRUE(c.valid());
  EXPECT_TRUE(c.close().has_value());
  EXPECT_FALSE(c.valid());
  EXPECT_TRUE(c.close().has_value());  // nothing held: nothing to do
}

TEST(WriteAll, WritesAtThePositionOrAtAnOffset) {
  TempDir dir;
  const std::string path = dir.path() + "/f";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(write_all(fd.get(), std::string_view("hello world")));
  const std::uint8_t bytes[] = {'W', 'O'};
  ASSERT_TRUE(write_all(fd.get(), std::span<const std::uint8_t>(bytes), 6));
  std::string text;
  ASSERT_TRUE(read_file(path, text));
  EXPECT_EQ(text, "hello WOrld");
}

TEST(WriteAll, ReportsTheErrnoOfTheFailingCall) {
  UniqueFd ro(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto w = write_all(ro.get(), std::string_view("x"));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, std::errc::bad_file_descriptor);
  auto p = write_all(ro.get(), std::string_view("x"), 0);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, std::errc::bad_file_descriptor);
}

}  // namespace
}  // namespace gridnode::platform
