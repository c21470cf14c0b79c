#include "gridnode/platform/files.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>

#include "temp_dir.hpp"

namespace gridnode::platform {
namespace {

using gridnode::testing::FakeTree;

TEST(ParseInt, AcceptsKernelFormatting) {
  EXPECT_EQ(parse_int64("41500\n").value(), 41500);
  EXPECT_EQ(parse_int64("-273\n").value(), -273);
  EXPECT_EQ(parse_uint64("18446744073709551615\n").value(), 18446744073709551615ull);
}

TEST(ParseInt, RejectsGarbageEmptyAndOverflow) {
  EXPECT_EQ(parse_int64("").error().code, std::errc::invalid_argument);
  EXPECT_EQ(parse_int64("\n").error().code, std::errc::invalid_argument);
  EXPECT_EQ(parse_int64("12abc").error().code, std::errc::invalid_argument);
  EXPECT_EQ(parse_int64("+5").error().code, std::errc::invalid_argument);
  EXPECT_EQ(parse_int64("9223372036854775808").error().code, std::errc::result_out_of_range);
  EXPECT_EQ(parse_uint64("18446744073709551616").error().code, std::errc::result_out_of_range);
  EXPECT_EQ(parse_uint64("-1").error().code, std::errc::invalid_argument);
}

TEST(ReadSmallFile, ReadsAndReportsErrors) {
  FakeTree t;
  t.write("a", "42\n");
  std::array<char, 32> buf{};
  EXPECT_EQ(read_small_file(t.root() + "/a", buf).value(), "42\n");
  auto missing = read_small_file(t.root() + "/nope", buf);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, std::errc::no_such_file_or_directory);
  EXPECT_NE(missing.error().message().find("/nope"), std::string::npos);
  t.write("big", std::string(100, '1'));
  EXPECT_EQ(read_small_file(t.root() + "/big", buf).error().code, std::errc::result_out_of_range);
}

TEST(ReadSmallFile, UnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  FakeTree t;
  t.write("secret", "1\n", 0);
  std::array<char, 32> buf{};
  EXPECT_EQ(read_small_file(t.root() + "/secret", buf).error().code,
            std::errc::permission_denied);
}

TEST(KernelFile, RereadsFromOffsetZeroAndReopensAfterError) {
  FakeTree t;
  t.write("v", "1\n");
  KernelFile f(t.root() + "/v");
  std::array<char, 32> buf{};
  EXPECT_EQ(f.read(buf).value(), "1\n");
  EXPECT_EQ(f.read(buf).value(), "1\n");
  t.remove("v");
  // An unlinked regular file stays readable through the open descriptor; sysfs answers ENODEV
  // instead. Closing and re-reading sees the removal.
  f.close();
  EXPECT_EQ(f.read(buf).error().code, std::errc::no_such_file_or_directory);
  t.write("v", "2\n");
  EXPECT_EQ(f.read(buf).value(), "2\n");
}

TEST(ReadFile, ReadsLargeFilesAndEnforcesLimit) {
  FakeTree t;
  std::string content(10000, 'x');
  t.write("f", content);
  std::string out;
  ASSERT_TRUE(read_file(t.root() + "/f", out));
  EXPECT_EQ(out, content);
  EXPECT_EQ(read_file(t.root() + "/f", out, 5000).error().code, std::errc::file_too_large);
}

TEST(ListDir, SortedWithoutDots) {
  FakeTree t;
  t.write("d/b", "");
  t.write("d/a", "");
  EXPECT_EQ(list_dir(t.root() + "/d").value(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(list_dir(t.root() + "/x").error().code, std::errc::no_such_file_or_directory);
}

}  // namespace
}  // namespace gridnode::platform
