#include "remote_sender.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.hpp"

namespace gridnode::collector {
namespace {

TEST(RemotePosition, AbsentIsZeroAndWrittenIsReadBack) {
  testing::TempDir dir;
  auto none = read_remote_position(dir / "sink.jsonl.rw-vm");
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, RemotePosition{});
  const RemotePosition p{.offset = 4096,
                         .inflight_end = 8192,
                         .resend_from = 1024,
                         .acked_max_ms = 1795586100123,
                         .inode = 77};
  ASSERT_TRUE(write_remote_position(dir / "sink.jsonl.rw-vm", p));
  auto back = read_remote_position(dir / "sink.jsonl.rw-vm");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, p);
}

TEST(RemotePosition, UnreadableIsAnErrorNotAFreshStart) {
  testing::TempDir dir;
  std::ofstream(dir / "pos") << "{\"offset\": \"many\"}";
  auto p = read_remote_position(dir / "pos");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("not a remote-write position"), std::string::npos);
  std::ofstream(dir / "pos2") << "garbage";
  EXPECT_FALSE(read_remote_position(dir / "pos2"));
}

TEST(RemotePosition, ResendFromNeverPassesTheOffset) {
  testing::TempDir dir;
  std::ofstream(dir / "pos") << R"({"offset":10,"resend_from":99})";
  auto p = read_remote_position(dir / "pos");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->resend_from, 10u);
}

TEST(RemotePosition, LivesBesideTheSourceNamedByTheTarget) {
  RemoteTarget t;
  t.name = "vm";
  EXPECT_EQ(remote_position_path("/var/lib/gridnode/sink.jsonl", t),
            "/var/lib/gridnode/sink.jsonl.rw-vm");
}

}  // namespace
}  // namespace gridnode::collector
