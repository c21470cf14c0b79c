#include "gridnode/drivers/filesystem.hpp"

#include <gtest/gtest.h>
#include <sys/vfs.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "../../drivers/src/filesystem/filesystem_options.hpp"
#include "../../drivers/src/filesystem/mounts.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::FakeTree;
using gridnode::testing::fixture_path;
using gridnode::testing::has_line;
using gridnode::testing::sweep_ok;
using gridnode::testing::sweep_text;

FilesystemOptions options_at(const std::string& root) {
  FilesystemOptions o;
  o.roots.procfs = root + "/proc";
  o.roots.sysfs = root + "/sys";
  o.roots.rootfs = root;
  return o;
}

std::unique_ptr<Driver> driver_with(FilesystemOptions o) {
  auto d = make_filesystem_driver(std::move(o));
  EXPECT_TRUE(d.has_value()) << d.error().context;
  return std::move(*d);
}

// The values that depend on the file system the test runs on (sizes and free counts) become
// "N"; the set of series, their labels, readonly and device_error stay exact.
std::string stable_text(const Sweep& sweep) {
  std::istringstream in(sweep_text(sweep));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("node_filesystem_") && !line.starts_with("node_filesystem_readonly") &&
        !line.starts_with("node_filesystem_device_error")) {
      line = line.substr(0, line.rfind(' ')) + " N";
    }
    out += line + "\n";
  }
  return out;
}

// The value of `series` (`name{labels}`) in a sweep's text, or "" when absent.
std::string value_of(const std::string& text, const std::string& series) {
  auto at = text.find(series + " ");
  if (at == std::string::npos || (at != 0 && text[at - 1] != '\n')) {
    return {};
  }
  auto start = at + series.size() + 1;
  return text.substr(start, text.find('\n', start) - start);
}

TEST(FilesystemMounts, ParsesAsNodeExporter) {
  auto m = filesystem::parse_mounts(
      "/dev/sda1 /mnt/a\\040b\\011c ext4 rw,ro 0 0\n"
      "short line\n"
      "\n"
      "tmpfs /host/run tmpfs rw 0 0\n"
      "rootfs /host ext4 ro\n"
      "x /hostile/y ext4 rw 0 0",
      "/host");
  ASSERT_EQ(m.mounts.size(), 4u);
  EXPECT_EQ(m.malformed, 2u);
  EXPECT_EQ(m.mounts[0].mount_point, "/mnt/a b\tc");
  EXPECT_TRUE(m.mounts[0].read_only);
  EXPECT_EQ(m.mounts[1].mount_point, "/run");
  EXPECT_FALSE(m.mounts[1].read_only);
  EXPECT_EQ(m.mounts[2].mount_point, "/");  // the prefix itself
  EXPECT_TRUE(m.mounts[2].read_only);
  // TrimPrefix on text, not on path components: node_exporter's, kept.
  EXPECT_EQ(m.mounts[3].mount_point, "ile/y");
  // "\134" (a backslash) is not decoded by node_exporter; nor here.
  auto b = filesystem::parse_mounts("d /a\\134b ext4 rw 0 0\n", "/");
  EXPECT_EQ(b.mounts[0].mount_point, "/a\\134b");
}

TEST(FilesystemOptions, SectionKeys) {
  DriverContext context;
  context.sweep_timeout = std::chrono::seconds(2);
  OptionSection section{"filesystem",
                        {{"mount_timeout", "agent.toml:3", 5.0},
                         {"fs_types_exclude", "agent.toml:4", std::string("^tmpfs$")}}};
  auto o = filesystem::options(context, section);
  ASSERT_TRUE(o.has_value()) << o.error().context;
  EXPECT_EQ(o->mount_timeout, std::chrono::milliseconds(500));  // a quarter of the sweep's
  EXPECT_EQ(o->fs_types_exclude, "^tmpfs$");
  EXPECT_EQ(o->mount_points_exclude, FilesystemOptions{}.mount_points_exclude);

  OptionSection bad{"filesystem", {{"mount_points_exclude", "agent.toml:7", std::string("(")}}};
  auto b = filesystem::check(bad);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().context.find("agent.toml:7: filesystem.mount_points_exclude: not a regular "
                                   "expression"),
            std::string::npos)
      << b.error().context;
  OptionSection unknown{"filesystem", {{"ignored_mount_points", "agent.toml:8", std::string("x")}}};
  EXPECT_FALSE(filesystem::check(unknown).has_value());
}

TEST(FilesystemDriver, BasicFixtureMatchesGolden) {
  std::string root = fixture_path("filesystem/basic");
  auto d = driver_with(options_at(root));
  Sweep s = sweep_ok(*d);
  expect_golden(stable_text(s), root + "/expected.prom");
  std::string text = sweep_text(s);
  // The sizes are those of the directories' own file system, read now.
  struct statfs st {};
  ASSERT_EQ(::statfs((root + "/data").c_str(), &st), 0);
  EXPECT_EQ(
      value_of(text,
               R"(node_filesystem_size_bytes{device="/dev/sdb1",fstype="xfs",mountpoint="/data"})"),
      std::to_string(static_cast<std::uint64_t>(st.f_blocks) * st.f_bsize));
  EXPECT_EQ(
      value_of(text,
               R"(node_filesystem_files{device="/dev/sdb1",fstype="xfs",mountpoint="/data"})"),
      std::to_string(st.f_files));
  // A mount whose directory is absent is a device error, and has nothing else.
  EXPECT_TRUE(has_line(
      text,
      R"(node_filesystem_device_error{device="nfs.example.org:/export",fstype="nfs4",mountpoint="/mnt/gone"} 1)"));
  EXPECT_EQ(
      value_of(
          text,
          R"(node_filesystem_size_bytes{device="nfs.example.org:/export",fstype="nfs4",mountpoint="/mnt/gone"})"),
      "");
  EXPECT_EQ(s.errors, 0u);
}

TEST(FilesystemDriver, FallsBackToProcMountsWhereOneIsHidden) {
  std::string root = fixture_path("filesystem/hidepid");
  auto d = driver_with(options_at(root));
  Sweep s = sweep_ok(*d);
  expect_golden(stable_text(s), root + "/expected.prom");
}

TEST(FilesystemDriver, NoMountsFileIsAbsent) {
  FakeTree tree;
  tree.mkdir("proc");
  auto d = driver_with(options_at(tree.root()));
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(FilesystemDriver, ExcludesAreOptions) {
  std::string root = fixture_path("filesystem/basic");
  auto o = options_at(root);
  o.mount_points_exclude = "^/(data|srv)($|/)";
  o.fs_types_exclude = "^(vfat|nfs4)$";
  auto d = driver_with(o);
  std::string text = sweep_text(sweep_ok(*d));
  EXPECT_EQ(text.find("mountpoint=\"/data\""), std::string::npos);
  EXPECT_EQ(text.find("mountpoint=\"/srv/backup\""), std::string::npos);
  EXPECT_EQ(text.find("fstype=\"vfat\""), std::string::npos);
  // No longer excluded by the defaults: proc and sysfs mounts are reported.
  EXPECT_NE(text.find("mountpoint=\"/proc\""), std::string::npos);
  EXPECT_NE(text.find("fstype=\"overlay\""), std::string::npos);

  o.fs_types_exclude = "^(unclosed$";
  auto bad = make_filesystem_driver(o);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, std::errc::invalid_argument);
  EXPECT_NE(bad.error().context.find("fs_types_exclude"), std::string::npos);
}

TEST(FilesystemDriver, MountsChangeRebuildsTheCatalog) {
  FakeTree tree;
  tree.mkdir("a");
  tree.mkdir("b");
  tree.write("proc/1/mounts", "/dev/a /a ext4 rw 0 0\n");
  auto d = driver_with(options_at(tree.root()));
  Sweep s1 = sweep_ok(*d);
  Sweep s2 = sweep_ok(*d);
  EXPECT_EQ(s1.catalog, s2.catalog);  // unchanged: the same pointer
  tree.write("proc/1/mounts", "/dev/a /a ext4 rw 0 0\n/dev/b /b ext4 ro 0 0\n");
  Sweep s3 = sweep_ok(*d);
  EXPECT_NE(s3.catalog, s2.catalog);
  EXPECT_TRUE(
      has_line(sweep_text(s3),
               R"(node_filesystem_readonly{device="/dev/b",fstype="ext4",mountpoint="/b"} 1)"));
}

TEST(FilesystemDriver, SteadyStateSweepDoesNotAllocate) {
  auto d = driver_with(options_at(fixture_path("filesystem/basic")));
  Sweep s;
  for (int i = 0; i < 3; ++i) {
    s.reset();
    ASSERT_TRUE(d->sweep(s).has_value());
  }
  std::size_t readings = s.readings.size();
  testing::AllocationCounter allocations;
  allocations.start();
  s.reset();
  auto r = d->sweep(s);
  std::size_t allocated = allocations.stop();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(s.readings.size(), readings);
  EXPECT_EQ(allocated, 0u);
}

// A statfs that blocks, as one on a dead NFS server does, for every path ending in "/hung",
// until the test releases it. Injected through FilesystemOptions::statfs_call: the worker, its
// thread and its deadline are the driver's own. (A real hung mount, a FUSE file system whose
// statfs does not answer, is integration.filesystem_hung_mount_test, where it may mount.)
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> hung_calls{0};
  std::atomic<int> calls{0};
  std::atomic<int> returned{0};  // hung calls that came back after the gate opened
};
Gate* gate = nullptr;

// Lets every hung call return, and waits until they have and their workers have let go of them,
// so that nothing is still owned by a thread when the process exits (LeakSanitizer looks then).
void release(Gate& g) {
  {
    std::lock_guard lock(g.mu);
    g.open = true;
  }
  g.cv.notify_all();
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (g.returned.load() < g.hung_calls.load() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the workers' own exit
}

int blocking_statfs(const char* path, struct statfs* out) {
  Gate* g = gate;
  ++g->calls;
  std::string_view p(path);
  if (p.ends_with("/hung")) {
    ++g->hung_calls;
    std::unique_lock lock(g->mu);
    g->cv.wait(lock, [g] { return g->open; });
    lock.unlock();
    int rc = ::statfs(path, out);
    ++g->returned;
    return rc;
  }
  return ::statfs(path, out);
}

TEST(FilesystemDriver, HungMountIsStalledNotWaitedFor) {
  Gate g;
  gate = &g;
  FakeTree tree;
  tree.mkdir("ok");
  tree.mkdir("hung");
  tree.mkdir("later");
  tree.write("proc/1/mounts",
             "/dev/ok /ok ext4 rw 0 0\nserver:/x /hung nfs4 rw 0 0\n/dev/l /later ext4 rw 0 0\n");
  auto o = options_at(tree.root());
  o.mount_timeout = std::chrono::milliseconds(200);
  o.statfs_call = blocking_statfs;
  auto d = driver_with(o);

  auto t0 = std::chrono::steady_clock::now();
  Sweep s1 = sweep_ok(*d);
  auto first = std::chrono::steady_clock::now() - t0;
  std::string text = sweep_text(s1);
  EXPECT_TRUE(has_line(
      text,
      R"(node_filesystem_device_error{device="server:/x",fstype="nfs4",mountpoint="/hung"} 1)"));
  EXPECT_EQ(
      value_of(
          text,
          R"(node_filesystem_size_bytes{device="server:/x",fstype="nfs4",mountpoint="/hung"})"),
      "");
  // The mounts before and after the hung one are read (the second on a fresh worker).
  EXPECT_TRUE(has_line(
      text, R"(node_filesystem_device_error{device="/dev/ok",fstype="ext4",mountpoint="/ok"} 0)"));
  EXPECT_TRUE(has_line(
      text,
      R"(node_filesystem_device_error{device="/dev/l",fstype="ext4",mountpoint="/later"} 0)"));
  EXPECT_NE(
      value_of(text,
               R"(node_filesystem_size_bytes{device="/dev/l",fstype="ext4",mountpoint="/later"})"),
      "");
  EXPECT_GE(first, std::chrono::milliseconds(200));
  EXPECT_LT(first, std::chrono::seconds(2));

  // Stalled: not statted again while its call is out, and no wait for it.
  t0 = std::chrono::steady_clock::now();
  Sweep s2 = sweep_ok(*d);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  EXPECT_EQ(g.hung_calls.load(), 1);
  EXPECT_TRUE(has_line(
      sweep_text(s2),
      R"(node_filesystem_device_error{device="server:/x",fstype="nfs4",mountpoint="/hung"} 1)"));

  // The call comes back: from the next sweep on the mount is read again.
  {
    std::lock_guard lock(g.mu);
    g.open = true;
  }
  g.cv.notify_all();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string recovered;
  while (std::chrono::steady_clock::now() < deadline) {
    recovered = sweep_text(sweep_ok(*d));
    if (has_line(
            recovered,
            R"(node_filesystem_device_error{device="server:/x",fstype="nfs4",mountpoint="/hung"} 0)")) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(has_line(
      recovered,
      R"(node_filesystem_device_error{device="server:/x",fstype="nfs4",mountpoint="/hung"} 0)"));
  EXPECT_NE(
      value_of(
          recovered,
          R"(node_filesystem_size_bytes{device="server:/x",fstype="nfs4",mountpoint="/hung"})"),
      "");
  EXPECT_EQ(g.hung_calls.load(), 2);
  d.reset();
  gate = nullptr;
}

TEST(FilesystemDriver, ManyHungMountsDoNotStretchTheSweep) {
  // One dead NFS server behind four mounts: a sweep stops calling after two deadlines; the
  // mounts it did not reach are the first the next sweep calls.
  static Gate g;  // static: a worker may still be leaving it after the test
  g.open = false;
  g.hung_calls = 0;
  g.calls = 0;
  g.returned = 0;
  gate = &g;
  FakeTree tree;
  std::string mounts;
  for (int i = 0; i < 4; ++i) {
    tree.mkdir("m" + std::to_string(i) + "/hung");
    mounts += "srv:/" + std::to_string(i) + " /m" + std::to_string(i) + "/hung nfs4 rw 0 0\n";
  }
  tree.mkdir("ok");
  mounts += "/dev/ok /ok ext4 rw 0 0\n";
  tree.write("proc/1/mounts", mounts);
  auto o = options_at(tree.root());
  o.mount_timeout = std::chrono::milliseconds(100);
  o.statfs_call = blocking_statfs;
  auto d = driver_with(o);
  auto count = [](const std::string& text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  };
  auto t0 = std::chrono::steady_clock::now();
  Sweep s1 = sweep_ok(*d);
  // Two deadlines, then no further call (the count says it; the clock only bounds it, loosely,
  // on a shared machine).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(g.hung_calls.load(), 2);
  EXPECT_EQ(s1.errors, 3u);  // two hung mounts and the healthy one not reached
  EXPECT_EQ(count(sweep_text(s1), "/hung\"} 1"), 2u);
  Sweep s2 = sweep_ok(*d);
  EXPECT_EQ(g.hung_calls.load(), 4);
  std::string text = sweep_text(s2);
  EXPECT_EQ(count(text, "/hung\"} 1"), 4u);
  // The last two hung mounts took this sweep's time; the healthy one is first in the next.
  EXPECT_EQ(text.find("mountpoint=\"/ok\""), std::string::npos);
  Sweep s3 = sweep_ok(*d);
  EXPECT_EQ(g.hung_calls.load(), 4);
  EXPECT_TRUE(has_line(sweep_text(s3), R"(node_filesystem_device_error{device="/dev/ok",fstype="ext4",mountpoint="/ok"} 0)"));
  EXPECT_EQ(s3.errors, 0u);
  d.reset();
  release(g);
}

TEST(FilesystemDriver, DriverGoesWhileACallHangs) {
  // The driver is destroyed with a call still in the kernel: the worker is left to itself and
  // its StatCall to it; nothing the test owns is touched afterwards (ASan would say).
  static Gate g;  // static: a worker may still be leaving it after the test
  g.open = false;
  g.hung_calls = 0;
  g.calls = 0;
  g.returned = 0;
  gate = &g;
  FakeTree tree;
  tree.mkdir("hung");
  tree.write("proc/1/mounts", "server:/x /hung nfs4 rw 0 0\n");
  auto o = options_at(tree.root());
  o.mount_timeout = std::chrono::milliseconds(50);
  o.statfs_call = blocking_statfs;
  {
    auto d = driver_with(o);
    Sweep s = sweep_ok(*d);
    EXPECT_TRUE(has_line(
        sweep_text(s),
        R"(node_filesystem_device_error{device="server:/x",fstype="nfs4",mountpoint="/hung"} 1)"));
  }
  release(g);
}

TEST(FilesystemDriver, RealHostMounts) {
  // This machine's own mounts: the root file system is there, not a device error.
  auto d = driver_with(FilesystemOptions{});
  Sweep s = sweep_ok(*d);
  std::string text = sweep_text(s);
  // In a container / may be an overlay, which the defaults exclude; where it is reported, it
  // has its sizes.
  if (text.find("mountpoint=\"/\"}") != std::string::npos) {
    EXPECT_NE(text.find("mountpoint=\"/\"} 0\n"), std::string::npos) << text;
  }
  EXPECT_EQ(text.find("fstype=\"proc\""), std::string::npos);
}

}  // namespace
}  // namespace gridnode::drivers
