#include "gridnode/drivers/procfs.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "../../drivers/src/procfs/procfs_parse.hpp"
#include "gridnode/platform/log.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using testing::FakeTree;
using testing::fixture_path;
using testing::has_line;
using testing::sweep_ok;
using testing::sweep_text;

// ---------------------------------------------------------------------------------------------
// Parsers, on strings.

TEST(ProcfsParse, SplitsLinesAndFields) {
  std::string_view rest = "a b\n\n  c\td  \nlast";
  std::string_view line;
  ASSERT_TRUE(procfs::next_line(rest, line));
  EXPECT_EQ(line, "a b");
  ASSERT_TRUE(procfs::next_line(rest, line));
  EXPECT_EQ(line, "");
  ASSERT_TRUE(procfs::next_line(rest, line));
  std::string_view fields = line;
  EXPECT_EQ(procfs::next_field(fields), "c");
  EXPECT_EQ(procfs::next_field(fields), "d");
  EXPECT_EQ(procfs::next_field(fields), "");
  ASSERT_TRUE(procfs::next_line(rest, line));
  EXPECT_EQ(line, "last");
  EXPECT_FALSE(procfs::next_line(rest, line));
}

TEST(ProcfsParse, HundredthsAreExact) {
  EXPECT_EQ(procfs::parse_hundredths("0.15").value(), 15u);
  EXPECT_EQ(procfs::parse_hundredths("12345.67\n").value(), 1234567u);
  EXPECT_EQ(procfs::parse_hundredths("1.07").value(), 107u);
  EXPECT_EQ(procfs::parse_hundredths("1.5").value(), 150u);
  EXPECT_EQ(procfs::parse_hundredths("3").value(), 300u);
  EXPECT_EQ(procfs::parse_hundredths("0.00").value(), 0u);
  EXPECT_EQ(procfs::parse_hundredths("184467440737095516.15").value(), 18446744073709551615u);
  EXPECT_EQ(procfs::parse_hundredths("184467440737095516.16").error().code,
            std::errc::result_out_of_range);
  EXPECT_EQ(procfs::parse_hundredths("99999999999999999999").error().code,
            std::errc::result_out_of_range);
  for (std::string_view bad :
       {"", "1.234", "-1.00", "+1.00", "1.", ".5", "1,5", "0x10", "1e3", "nan", "1.2.3", "1 2"}) {
    EXPECT_EQ(procfs::parse_hundredths(bad).error().code, std::errc::invalid_argument) << bad;
  }
}

TEST(ProcfsParse, StatLines) {
  auto cpu = procfs::parse_stat_line("cpu12 1 2 3 4 5 6 7 8 9 10");
  EXPECT_EQ(cpu.kind, procfs::StatLine::Kind::cpu);
  EXPECT_EQ(cpu.cpu, 12u);
  EXPECT_EQ(cpu.count, 10u);
  EXPECT_EQ(cpu.values[0], "1");
  EXPECT_EQ(cpu.values[9], "10");
  // A newer kernel's extra column is ignored.
  EXPECT_EQ(procfs::parse_stat_line("cpu0 1 2 3 4 5 6 7 8 9 10 11").count, 10u);
  EXPECT_EQ(procfs::parse_stat_line("cpu3 1 2").count, 2u);
  EXPECT_EQ(procfs::parse_stat_line("cpu  1 2 3 4 5 6 7 8 9 10").kind,
            procfs::StatLine::Kind::other);
  EXPECT_EQ(procfs::parse_stat_line("cpuX 1 2").kind, procfs::StatLine::Kind::bad_cpu);
  EXPECT_EQ(procfs::parse_stat_line("cpu9999999999 1").kind, procfs::StatLine::Kind::bad_cpu);
  auto intr = procfs::parse_stat_line("intr 25332990 44 632707 0");
  EXPECT_EQ(intr.kind, procfs::StatLine::Kind::intr);
  EXPECT_EQ(intr.values[0], "25332990");
  EXPECT_EQ(procfs::parse_stat_line("btime 1714979463").kind, procfs::StatLine::Kind::btime);
  EXPECT_EQ(procfs::parse_stat_line("ctxt 1").kind, procfs::StatLine::Kind::ctxt);
  EXPECT_EQ(procfs::parse_stat_line("processes 1").kind, procfs::StatLine::Kind::processes);
  EXPECT_EQ(procfs::parse_stat_line("procs_running 3").kind, procfs::StatLine::Kind::procs_running);
  EXPECT_EQ(procfs::parse_stat_line("procs_blocked 1").kind, procfs::StatLine::Kind::procs_blocked);
  EXPECT_EQ(procfs::parse_stat_line("softirq 1 2 3").kind, procfs::StatLine::Kind::other);
  EXPECT_EQ(procfs::parse_stat_line("").kind, procfs::StatLine::Kind::other);
}

TEST(ProcfsParse, CpuCountersNeverGoBackwardsUnlessIdleJumpsBack) {
  std::array<std::uint64_t, 10> state{};
  procfs::clamp_cpu_counters(state, {100, 0, 50, 10000, 40, 0, 0, 0, 0, 0});
  EXPECT_EQ(state[4], 40u);
  // iowait going backwards (tickless kernels) keeps the old value; the others move on.
  procfs::clamp_cpu_counters(state, {110, 0, 55, 10100, 30, 0, 0, 0, 0, 0});
  EXPECT_EQ(state[0], 110u);
  EXPECT_EQ(state[4], 40u);
  // Idle 2.99 s lower: still a glitch, old idle kept.
  procfs::clamp_cpu_counters(state, {120, 0, 60, 9801, 45, 0, 0, 0, 0, 0});
  EXPECT_EQ(state[3], 10100u);
  EXPECT_EQ(state[4], 45u);
  // Idle 3 s lower: a hot-plugged CPU, start again from the new values.
  procfs::clamp_cpu_counters(state, {5, 0, 1, 9800, 2, 0, 0, 0, 0, 0});
  EXPECT_EQ(state, (std::array<std::uint64_t, 10>{5, 0, 1, 9800, 2, 0, 0, 0, 0, 0}));
}

TEST(ProcfsParse, MeminfoLines) {
  auto kb = procfs::parse_meminfo_line("Active(anon):    2991204 kB");
  EXPECT_EQ(kb.kind, procfs::MeminfoLine::Kind::value_kb);
  EXPECT_EQ(kb.key, "Active(anon)");
  EXPECT_EQ(kb.value, "2991204");
  auto plain = procfs::parse_meminfo_line("HugePages_Total:       0");
  EXPECT_EQ(plain.kind, procfs::MeminfoLine::Kind::value);
  EXPECT_EQ(plain.key, "HugePages_Total");
  EXPECT_EQ(procfs::parse_meminfo_line("   ").kind, procfs::MeminfoLine::Kind::blank);
  for (std::string_view bad : {"MemTotal", "MemTotal:", "MemTotal 5 kB", ": 5", "A: 1 kB x"}) {
    EXPECT_EQ(procfs::parse_meminfo_line(bad).kind, procfs::MeminfoLine::Kind::bad) << bad;
  }
  // The value is checked when it is read, so that the field keeps its series.
  EXPECT_EQ(procfs::parse_meminfo_line("MemFree: 60x19312 kB").kind,
            procfs::MeminfoLine::Kind::value_kb);
}

TEST(ProcfsParse, MeminfoNamesFollowNodeExporter) {
  EXPECT_EQ(procfs::meminfo_metric_name("MemTotal", true), "node_memory_MemTotal_bytes");
  EXPECT_EQ(procfs::meminfo_metric_name("Active(anon)", true), "node_memory_Active_anon_bytes");
  EXPECT_EQ(procfs::meminfo_metric_name("HugePages_Total", false), "node_memory_HugePages_Total");
  EXPECT_EQ(procfs::meminfo_metric_name("DirectMap4k", true), "node_memory_DirectMap4k_bytes");
  // The regexp \((.*)\) is greedy: from the first '(' to the last ')', which leaves ")(" in
  // the middle here: not a metric name.
  EXPECT_EQ(procfs::meminfo_metric_name("A(b)c(d)", false), "");
  EXPECT_EQ(procfs::meminfo_metric_name("A(b", false), "");
  EXPECT_EQ(procfs::meminfo_metric_name("A)b(c", false), "");
  EXPECT_EQ(procfs::meminfo_metric_name("Swap-Free", true), "");
}

TEST(ProcfsParse, NetdevLines) {
  auto eth = procfs::parse_netdev_line(
      "  eth0: 9187263511 12034412   12  341    0     3          0     20311 1843221097 "
      "6120334    0    0    0     0       1          0");
  EXPECT_EQ(eth.kind, procfs::NetdevLine::Kind::device);
  EXPECT_EQ(eth.name, "eth0");
  EXPECT_EQ(eth.values[0], "9187263511");
  EXPECT_EQ(eth.values[3], "341");
  EXPECT_EQ(eth.values[14], "1");
  // Names longer than six characters touch the colon; the name is all before the last one.
  auto veth = procfs::parse_netdev_line("veth3f2a1b0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16");
  EXPECT_EQ(veth.kind, procfs::NetdevLine::Kind::device);
  EXPECT_EQ(veth.name, "veth3f2a1b0");
  EXPECT_EQ(veth.values[0], "1");
  EXPECT_EQ(procfs::parse_netdev_line("a:b: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16").name, "a:b");
  auto short_row = procfs::parse_netdev_line("  eth1: 1200 34 0 0");
  EXPECT_EQ(short_row.kind, procfs::NetdevLine::Kind::bad);
  EXPECT_EQ(short_row.name, "eth1");
  EXPECT_EQ(procfs::parse_netdev_line("no colon 1 2").kind, procfs::NetdevLine::Kind::bad);
  EXPECT_EQ(procfs::parse_netdev_line("  : 1 2").kind, procfs::NetdevLine::Kind::bad);
  EXPECT_EQ(procfs::parse_netdev_line("").kind, procfs::NetdevLine::Kind::blank);
}

TEST(ProcfsParse, DiskstatsLinesOfEachKernelGeneration) {
  auto k3 = procfs::parse_diskstats_line(" 252       0 vda 1 2 3 4 5 6 7 8 9 10 11");
  EXPECT_EQ(k3.kind, procfs::DiskstatsLine::Kind::device);
  EXPECT_EQ(k3.name, "vda");
  EXPECT_EQ(k3.count, 11u);
  EXPECT_EQ(procfs::parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15").count, 15u);
  auto k5 =
      procfs::parse_diskstats_line("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17");
  EXPECT_EQ(k5.count, 17u);
  EXPECT_EQ(k5.values[16], "17");
  EXPECT_EQ(
      procfs::parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18").count,
      17u);
  EXPECT_EQ(procfs::parse_diskstats_line("8 0 sdc 1 2 3 4 5 6 7 8 9 10").kind,
            procfs::DiskstatsLine::Kind::bad);
  EXPECT_EQ(procfs::parse_diskstats_line("x 0 sdc 1 2 3 4 5 6 7 8 9 10 11").kind,
            procfs::DiskstatsLine::Kind::bad);
  EXPECT_EQ(procfs::parse_diskstats_line("").kind, procfs::DiskstatsLine::Kind::blank);
}

TEST(ProcfsParse, DefaultIgnoredDisksMatchNodeExporterRegexp) {
  for (std::string_view ignored : {"ram0", "loop0", "loop12", "fd0", "sda1", "sdz15", "hda2",
                                   "vdb1", "xvda1", "nvme0n1p1", "nvme10n12p3"}) {
    EXPECT_TRUE(procfs::is_ignored_disk(ignored)) << ignored;
  }
  for (std::string_view kept :
       {"sda", "sdaa", "sdaa1", "vda", "xvda", "nvme0n1", "nvme0n1p", "dm-0", "md127", "sr0",
        "mmcblk0", "mmcblk0p1", "zram0", "loop", "ram", "sd1", "Sda1", "loop0a", "nvmen1p1"}) {
    EXPECT_FALSE(procfs::is_ignored_disk(kept)) << kept;
  }
}

TEST(ProcfsParse, BootId) {
  EXPECT_EQ(procfs::parse_boot_id("6f4b3c1e-2a9d-4c55-9b1e-0d7a8e3f5c21\n"),
            "6f4b3c1e-2a9d-4c55-9b1e-0d7a8e3f5c21");
  EXPECT_EQ(procfs::parse_boot_id(""), "");
  EXPECT_EQ(procfs::parse_boot_id("6f4b3c1e-2a9d-4c55-9b1e-0d7a8e3f5c2"), "");
  EXPECT_EQ(procfs::parse_boot_id("6f4b3c1e-2a9d-4c55-9b1e-0d7a8e3f5c2g"), "");
  EXPECT_EQ(procfs::parse_boot_id("6f4b3c1e2a9d-4c55-9b1e-0d7a8e3f5c21x"), "");
}

// ---------------------------------------------------------------------------------------------
// The driver on fixture trees.

std::unique_ptr<Driver> driver_for(const std::string& root) {
  platform::Roots roots;
  roots.sysfs = root + "/sys";
  roots.procfs = root + "/proc";
  return make_procfs_driver(ProcfsOptions{roots});
}

bool has_prefix(const std::string& text, std::string_view prefix) {
  return text.find(prefix) != std::string::npos;
}

class ProcfsFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(ProcfsFixture, MatchesGolden) {
  std::string dir = fixture_path(std::string("procfs/") + GetParam());
  auto d = driver_for(dir);
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 0u);
  testing::expect_golden(sweep_text(s), dir + "/expected.prom");
  // A second sweep of an unchanged tree publishes the same catalog and the same readings.
  Sweep again;
  ASSERT_TRUE(d->sweep(again).has_value());
  EXPECT_EQ(again.catalog, s.catalog);
  EXPECT_EQ(sweep_text(again), sweep_text(s));
}

INSTANTIATE_TEST_SUITE_P(Cases, ProcfsFixture,
                         ::testing::Values("basic", "kernel_4_19", "kernel_3_10"));

TEST(ProcfsDriver, BasicCaseHasNodeExporterNamesAndUnits) {
  auto d = driver_for(fixture_path("procfs/basic"));
  std::string t = sweep_text(sweep_ok(*d));
  EXPECT_TRUE(has_line(t, R"(node_cpu_seconds_total{cpu="2",mode="user"} 14203.3)"));
  EXPECT_TRUE(has_line(t, R"(node_cpu_guest_seconds_total{cpu="2",mode="user"} 1200.34)"));
  EXPECT_TRUE(has_line(t, R"(node_cpu_guest_seconds_total{cpu="2",mode="nice"} 15.2)"));
  EXPECT_TRUE(has_line(t, "node_boot_time_seconds 1714979463"));
  EXPECT_TRUE(has_line(t, "node_intr_total 25332990"));
  EXPECT_TRUE(has_line(t, "node_memory_MemTotal_bytes 16694755328"));
  EXPECT_TRUE(has_line(t, "node_memory_Active_anon_bytes 3062992896"));
  EXPECT_TRUE(has_line(t, "node_memory_HugePages_Total 0"));
  EXPECT_TRUE(has_line(t, "node_load1 0.15"));
  EXPECT_TRUE(has_line(t, "node_load15 1.07"));
  EXPECT_TRUE(has_line(t, "gridnode_uptime_seconds 1234567.89"));
  EXPECT_TRUE(
      has_line(t, R"(gridnode_boot_info{boot_id="6f4b3c1e-2a9d-4c55-9b1e-0d7a8e3f5c21"} 1)"));
  EXPECT_TRUE(has_line(t, R"(node_network_receive_drop_total{device="eth0"} 341)"));
  EXPECT_TRUE(has_line(t, R"(node_disk_read_bytes_total{device="sda"} 6185838592)"));
  EXPECT_TRUE(has_line(t, R"(node_disk_read_time_seconds_total{device="sda"} 98.112)"));
  EXPECT_TRUE(has_line(t, R"(node_disk_flush_requests_total{device="nvme0n1"} 302110)"));
  // node_exporter's default filters: lo (Debian's netdev default), partitions and loops.
  EXPECT_FALSE(has_prefix(t, R"({device="lo"})"));
  EXPECT_FALSE(has_prefix(t, R"({device="sda1"})"));
  EXPECT_FALSE(has_prefix(t, R"({device="nvme0n1p1"})"));
  EXPECT_FALSE(has_prefix(t, R"({device="loop0"})"));
  EXPECT_TRUE(has_prefix(t, R"({device="dm-0"})"));
}

TEST(ProcfsDriver, CatalogCarriesScalesAndTypes) {
  auto d = driver_for(fixture_path("procfs/basic"));
  Sweep s = sweep_ok(*d);
  auto family = [&](std::string_view name) -> const Family* {
    for (const auto& f : s.catalog->families) {
      if (f.name == name) {
        return &f;
      }
    }
    return nullptr;
  };
  ASSERT_NE(family("node_cpu_seconds_total"), nullptr);
  EXPECT_EQ(family("node_cpu_seconds_total")->scale, (Scale{1, -2}));
  EXPECT_EQ(family("node_cpu_seconds_total")->type, MetricType::counter);
  EXPECT_EQ(family("node_memory_MemTotal_bytes")->scale, (Scale{1024, 0}));
  EXPECT_EQ(family("node_memory_MemTotal_bytes")->help, "Memory information field MemTotal_bytes.");
  EXPECT_EQ(family("node_memory_HugePages_Total")->scale, (Scale{1, 0}));
  EXPECT_EQ(family("node_load1")->scale, (Scale{1, -2}));
  EXPECT_EQ(family("node_load1")->type, MetricType::gauge);
  EXPECT_EQ(family("node_disk_written_bytes_total")->scale, (Scale{512, 0}));
  EXPECT_EQ(family("node_disk_io_time_seconds_total")->scale, (Scale{1, -3}));
  EXPECT_EQ(family("node_disk_io_now")->type, MetricType::gauge);
  EXPECT_EQ(family("node_disk_discarded_sectors_total")->scale, (Scale{1, 0}));
  EXPECT_EQ(family("node_network_receive_bytes_total")->help,
            "Network device statistic receive_bytes.");
  EXPECT_EQ(family("node_boot_time_seconds")->type, MetricType::gauge);
  EXPECT_EQ(family("node_intr_total")->type, MetricType::counter);
}

TEST(ProcfsDriver, ExportsTheColumnsEachKernelGenerationHas) {
  auto count_families = [](const std::string& text, std::string_view device) {
    std::size_t n = 0;
    std::string needle = "{device=\"" + std::string(device) + "\"}";
    for (std::size_t pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + 1)) {
      ++n;
    }
    return n;
  };
  auto old = sweep_text(sweep_ok(*driver_for(fixture_path("procfs/kernel_3_10"))));
  EXPECT_EQ(count_families(old, "vda"), 11u);
  auto mid = sweep_text(sweep_ok(*driver_for(fixture_path("procfs/kernel_4_19"))));
  EXPECT_EQ(count_families(mid, "sda"), 15u);
  auto now = sweep_text(sweep_ok(*driver_for(fixture_path("procfs/basic"))));
  EXPECT_EQ(count_families(now, "sda"), 17u);
}

TEST(ProcfsDriver, OfflineCpuBelowTheHighestIsReportedAsZeroLikeNodeExporter) {
  auto t = sweep_text(sweep_ok(*driver_for(fixture_path("procfs/kernel_4_19"))));
  EXPECT_TRUE(has_line(t, R"(node_cpu_seconds_total{cpu="1",mode="idle"} 0)"));
  EXPECT_TRUE(has_line(t, R"(node_cpu_guest_seconds_total{cpu="1",mode="user"} 0)"));
  EXPECT_FALSE(has_prefix(t, R"(cpu="4")"));
}

TEST(ProcfsDriver, MalformedRowsAreSkippedAndCounted) {
  std::string dir = fixture_path("procfs/malformed");
  auto d = driver_for(dir);
  Sweep s = sweep_ok(*d);
  // cpu3's truncated row, MemFree's garbage, eth1's short row, sda's 20-digit sector count.
  EXPECT_EQ(s.errors, 4u);
  std::string t = sweep_text(s);
  testing::expect_golden(t, dir + "/expected.prom");
  EXPECT_FALSE(has_prefix(t, R"(cpu="3")"));
  EXPECT_TRUE(has_line(t, R"(node_cpu_seconds_total{cpu="2",mode="user"} 14203.3)"));
  EXPECT_FALSE(has_prefix(t, "node_memory_MemFree_bytes"));
  EXPECT_TRUE(has_line(t, "node_memory_MemTotal_bytes 16694755328"));
  EXPECT_FALSE(has_prefix(t, R"({device="eth1"})"));
  EXPECT_TRUE(has_line(t, R"(node_network_receive_bytes_total{device="eth0"} 9187263511)"));
  EXPECT_FALSE(has_prefix(t, R"(node_disk_read_bytes_total{device="sda"})"));
  EXPECT_TRUE(has_line(t, R"(node_disk_reads_completed_total{device="sda"} 188406)"));
  // The same problems on the next sweep: counted again, catalog kept.
  Sweep again;
  ASSERT_TRUE(d->sweep(again).has_value());
  EXPECT_EQ(again.errors, 4u);
  EXPECT_EQ(again.catalog, s.catalog);
}

TEST(ProcfsDriver, SourceAbsent) {
  FakeTree tree;
  tree.mkdir("proc");
  auto d = driver_for(tree.root());
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
  auto missing_root = driver_for(tree.root() + "/nowhere");
  EXPECT_EQ(missing_root->sweep(s).error().code, std::errc::no_such_file_or_directory);
}

// ---------------------------------------------------------------------------------------------
// Trees that change between sweeps.

constexpr std::string_view kNetdevHeader =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n";

std::string netdev_row(std::string_view name, int base) {
  std::string row = "  " + std::string(name) + ":";
  for (int i = 0; i < 16; ++i) {
    row += " " + std::to_string(base + i);
  }
  return row + "\n";
}

std::string stat_text(std::initializer_list<std::string_view> cpu_rows) {
  std::string s = "cpu  1 2 3 4 5 6 7 8 9 10\n";
  for (auto row : cpu_rows) {
    s += std::string(row) + "\n";
  }
  return s +
         "intr 100 1 2\nctxt 200\nbtime 300\nprocesses 400\nprocs_running 5\n"
         "procs_blocked 6\n";
}

// A small host: two CPUs, one interface, one disk.
void write_small_host(FakeTree& t) {
  t.write("proc/stat",
          stat_text({"cpu0 100 0 50 10000 40 0 0 0 0 0", "cpu1 200 0 60 20000 30 0 0 0 0 0"}));
  t.write("proc/meminfo", "MemTotal:       1000 kB\nMemFree:         500 kB\n");
  t.write("proc/loadavg", "0.15 0.32 1.07 3/712 48213\n");
  t.write("proc/uptime", "100.25 200.50\n");
  t.write("proc/net/dev",
          std::string(kNetdevHeader) + netdev_row("lo", 0) + netdev_row("eth0", 100));
  t.write("proc/diskstats", "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n");
  t.write("proc/sys/kernel/random/boot_id", "6f4b3c1e-2a9d-4c55-9b1e-0d7a8e3f5c21\n");
}

TEST(ProcfsDriver, RepeatingProblemsAreLoggedOnceAndWhenTheyClear) {
  FakeTree t;
  write_small_host(t);
  t.write("proc/meminfo", "MemTotal:       1000 kB\nMemFree: x kB\n");
  auto d = driver_for(t.root());
  platform::Log::set_threshold(platform::Level::debug);
  ::testing::internal::CaptureStderr();
  Sweep s;
  for (int i = 0; i < 3; ++i) {
    s.reset();
    ASSERT_TRUE(d->sweep(s).has_value());
    EXPECT_EQ(s.errors, 1u);
  }
  t.write("proc/meminfo", "MemTotal:       1000 kB\nMemFree: 7 kB\n");
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  std::string log = ::testing::internal::GetCapturedStderr();
  platform::Log::set_threshold(platform::Level::info);
  auto count = [&](std::string_view what) {
    std::size_t n = 0;
    for (auto pos = log.find(what); pos != std::string::npos; pos = log.find(what, pos + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(count("reading skipped"), 1u) << log;
  EXPECT_EQ(count("reading recovered"), 1u) << log;
  EXPECT_NE(log.find("node_memory_MemFree_bytes"), std::string::npos) << log;
  EXPECT_NE(log.find(t.root() + "/proc/meminfo"), std::string::npos) << log;
}

TEST(ProcfsDriver, CatalogPointerIsStableAcrossSteadySweeps) {
  FakeTree t;
  write_small_host(t);
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  auto first = s.catalog;
  for (int i = 0; i < 130; ++i) {  // past the periodic rediscovery too
    s.reset();
    ASSERT_TRUE(d->sweep(s).has_value());
    EXPECT_EQ(s.catalog, first);
    EXPECT_EQ(s.errors, 0u);
  }
  // Values change without any catalog change.
  t.write("proc/net/dev",
          std::string(kNetdevHeader) + netdev_row("lo", 0) + netdev_row("eth0", 5000));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.catalog, first);
  EXPECT_TRUE(has_line(sweep_text(s), R"(node_network_receive_bytes_total{device="eth0"} 5000)"));
}

TEST(ProcfsDriver, InterfaceAppearingAndVanishingRebuildsTheCatalog) {
  FakeTree t;
  write_small_host(t);
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  auto first = s.catalog;

  t.write("proc/net/dev", std::string(kNetdevHeader) + netdev_row("lo", 0) +
                              netdev_row("eth0", 100) + netdev_row("eth1", 900));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_NE(s.catalog, first);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(
      has_line(sweep_text(s), R"(node_network_transmit_compressed_total{device="eth1"} 915)"));
  auto second = s.catalog;

  // Same rows in another order is another catalog too (series are in row order).
  t.write("proc/net/dev", std::string(kNetdevHeader) + netdev_row("eth1", 900) +
                              netdev_row("lo", 0) + netdev_row("eth0", 100));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.errors, 0u);
  EXPECT_NE(s.catalog, second);
  EXPECT_NE(sweep_text(s).find("eth1"), std::string::npos);

  t.write("proc/net/dev",
          std::string(kNetdevHeader) + netdev_row("lo", 0) + netdev_row("eth0", 100));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(sweep_text(s).find("eth1"), std::string::npos);
  for (const auto& series : s.catalog->series) {
    for (const auto& [k, v] : series.labels) {
      EXPECT_NE(v, "eth1");
    }
  }
}

TEST(ProcfsDriver, DiskVanishingBetweenSweeps) {
  FakeTree t;
  write_small_host(t);
  t.write("proc/diskstats",
          "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n"
          "   8      16 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n");
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_TRUE(has_prefix(sweep_text(s), R"({device="sdb"})"));
  auto first = s.catalog;
  t.write("proc/diskstats", "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n");
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.errors, 0u);
  EXPECT_NE(s.catalog, first);
  EXPECT_FALSE(has_prefix(sweep_text(s), R"({device="sdb"})"));
  EXPECT_TRUE(has_prefix(sweep_text(s), R"({device="sda"})"));
}

TEST(ProcfsDriver, TableVanishingDropsItsFamiliesOnly) {
  FakeTree t;
  write_small_host(t);
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  t.remove("proc/diskstats");
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  // A kernel without block devices has no diskstats: absent, not an error.
  EXPECT_EQ(s.errors, 0u);
  std::string text = sweep_text(s);
  EXPECT_FALSE(has_prefix(text, "node_disk_"));
  EXPECT_TRUE(has_prefix(text, "node_cpu_seconds_total"));
  for (const auto& f : s.catalog->families) {
    EXPECT_NE(f.name.rfind("node_disk_", 0), 0u) << f.name;
  }
}

TEST(ProcfsDriver, DirectoryInPlaceOfATableIsCountedAndTheRestReported) {
  FakeTree t;
  write_small_host(t);
  t.remove("proc/meminfo");
  t.mkdir("proc/meminfo");
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 1u);
  std::string text = sweep_text(s);
  EXPECT_FALSE(has_prefix(text, "node_memory_"));
  EXPECT_TRUE(has_line(text, "node_load5 0.32"));
  // It keeps failing: counted every sweep, no catalog churn.
  auto first = s.catalog;
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.catalog, first);
  // Repaired: the table comes back.
  t.remove("proc/meminfo");
  t.write("proc/meminfo", "MemTotal:       1000 kB\n");
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(has_line(sweep_text(s), "node_memory_MemTotal_bytes 1024000"));
}

TEST(ProcfsDriver, ReadFailureAfterDiscoveryKeepsTheCatalog) {
  FakeTree t;
  write_small_host(t);
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  auto first = s.catalog;
  // (net/dev is opened afresh each sweep; the kept-open tables cannot be swapped under us,
  // which procfs never does anyway.)
  t.remove("proc/net/dev");
  t.mkdir("proc/net/dev");
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.catalog, first);
  EXPECT_FALSE(has_prefix(sweep_text(s), "node_network_"));
  EXPECT_TRUE(has_prefix(sweep_text(s), "node_load1 "));
}

TEST(ProcfsDriver, CpuHotplugRebuildsTheCatalog) {
  FakeTree t;
  write_small_host(t);
  t.write("proc/stat",
          stat_text({"cpu0 100 0 50 10000 40 0 0 0 0 0", "cpu1 200 0 60 20000 30 0 0 0 0 0",
                     "cpu2 300 0 70 30000 20 0 0 0 0 0"}));
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  auto first = s.catalog;

  // The last CPU goes offline: it is gone.
  t.write("proc/stat",
          stat_text({"cpu0 100 0 50 10000 40 0 0 0 0 0", "cpu1 200 0 60 20000 30 0 0 0 0 0"}));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  EXPECT_NE(s.catalog, first);
  EXPECT_FALSE(has_prefix(sweep_text(s), R"(cpu="2")"));

  // A CPU in the middle goes offline: node_exporter 1.5.0 reports it as zeros.
  t.write("proc/stat",
          stat_text({"cpu0 100 0 50 10000 40 0 0 0 0 0", "cpu2 300 0 70 30000 20 0 0 0 0 0"}));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, R"(node_cpu_seconds_total{cpu="1",mode="idle"} 0)"));
  EXPECT_TRUE(has_line(text, R"(node_cpu_seconds_total{cpu="2",mode="idle"} 300)"));
  EXPECT_EQ(s.errors, 0u);
}

TEST(ProcfsDriver, CpuCountersAreClampedAcrossSweeps) {
  FakeTree t;
  write_small_host(t);
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_TRUE(has_line(sweep_text(s), R"(node_cpu_seconds_total{cpu="0",mode="iowait"} 0.4)"));
  // iowait goes backwards: the old value stays.
  t.write("proc/stat",
          stat_text({"cpu0 110 0 50 10050 35 0 0 0 0 0", "cpu1 200 0 60 20000 30 0 0 0 0 0"}));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, R"(node_cpu_seconds_total{cpu="0",mode="iowait"} 0.4)"));
  EXPECT_TRUE(has_line(text, R"(node_cpu_seconds_total{cpu="0",mode="user"} 1.1)"));
  // Idle drops by 3 s or more: reset to the kernel's values.
  t.write("proc/stat",
          stat_text({"cpu0 1 0 1 9700 2 0 0 0 0 0", "cpu1 200 0 60 20000 30 0 0 0 0 0"}));
  s.reset();
  ASSERT_TRUE(d->sweep(s).has_value());
  text = sweep_text(s);
  EXPECT_TRUE(has_line(text, R"(node_cpu_seconds_total{cpu="0",mode="iowait"} 0.02)"));
  EXPECT_TRUE(has_line(text, R"(node_cpu_seconds_total{cpu="0",mode="idle"} 97)"));
}

TEST(ProcfsDriver, NumbersTooLargeAndGarbageAreSkippedPerReading) {
  FakeTree t;
  write_small_host(t);
  t.write("proc/meminfo", "MemTotal:       1000 kB\nMemFree: 99999999999999999999 kB\n");
  t.write("proc/loadavg", "0.15 x 1.07 3/712 48213\n");
  t.write("proc/uptime", "");
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 3u);
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "node_memory_MemTotal_bytes 1024000"));
  EXPECT_TRUE(has_line(text, "node_load1 0.15"));
  EXPECT_TRUE(has_line(text, "node_load15 1.07"));
  EXPECT_FALSE(has_prefix(text, "node_load5 "));
  EXPECT_FALSE(has_prefix(text, "gridnode_uptime_seconds "));
}

TEST(ProcfsDriver, CountersAbove2To63AreValues) {
  FakeTree t;
  write_small_host(t);
  t.write("proc/net/dev", std::string(kNetdevHeader) +
                              "  eth0: 18446744073709551615 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n");
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(has_line(sweep_text(s),
                       R"(node_network_receive_bytes_total{device="eth0"} 18446744073709551615)"));
}

TEST(ProcfsDriver, BootId) {
  FakeTree t;
  write_small_host(t);
  t.remove("proc/sys");
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  // Absent: nothing to report, nothing wrong.
  EXPECT_EQ(s.errors, 0u);
  EXPECT_FALSE(has_prefix(sweep_text(s), "gridnode_boot_info"));

  FakeTree bad;
  write_small_host(bad);
  bad.write("proc/sys/kernel/random/boot_id", "not a uuid\n");
  auto d2 = driver_for(bad.root());
  Sweep s2 = sweep_ok(*d2);
  EXPECT_EQ(s2.errors, 1u);
  EXPECT_FALSE(has_prefix(sweep_text(s2), "gridnode_boot_info"));
}

TEST(ProcfsDriver, DuplicateRowsGetOneSeries) {
  FakeTree t;
  write_small_host(t);
  t.write("proc/net/dev",
          std::string(kNetdevHeader) + netdev_row("eth0", 100) + netdev_row("eth0", 200));
  t.write("proc/meminfo", "Active(anon): 1 kB\nActive_anon: 2 kB\n");
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 2u);
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, R"(node_network_receive_bytes_total{device="eth0"} 100)"));
  EXPECT_TRUE(has_line(text, "node_memory_Active_anon_bytes 1024"));
  Sweep again;
  ASSERT_TRUE(d->sweep(again).has_value());
  EXPECT_EQ(again.catalog, s.catalog);
}

TEST(ProcfsDriver, LargeTablesAreReadWhole) {
  FakeTree t;
  write_small_host(t);
  // An intr line longer than the first buffer (a big host's), and more interfaces than one
  // kernel page holds.
  std::string intr = "intr 123456789";
  for (int i = 0; i < 20000; ++i) {
    intr += " 7";
  }
  t.write("proc/stat", "cpu0 100 0 50 10000 40 0 0 0 0 0\n" + intr + "\nctxt 9\n");
  std::string dev(kNetdevHeader);
  for (int i = 0; i < 300; ++i) {
    dev += netdev_row("veth" + std::to_string(i), i);
  }
  t.write("proc/net/dev", dev);
  auto d = driver_for(t.root());
  Sweep s = sweep_ok(*d);
  EXPECT_EQ(s.errors, 0u);
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "node_intr_total 123456789"));
  EXPECT_TRUE(has_line(text, "node_context_switches_total 9"));
  EXPECT_TRUE(has_line(text, R"(node_network_receive_bytes_total{device="veth299"} 299)"));
}

TEST(ProcfsDriver, SteadyStateSweepDoesNotAllocate) {
  auto d = driver_for(fixture_path("procfs/basic"));
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

// ---------------------------------------------------------------------------------------------
// INTEGRATION-STYLE: sweeps the real procfs of the machine running the test, once. It asserts
// only what holds on any Linux host.

TEST(ProcfsDriverLiveHost, SweepsThisMachinesProcfs) {
  platform::Roots roots{"/sys", "/proc"};
  auto d = make_procfs_driver(ProcfsOptions{roots});
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  bool cpu_nonzero = false;
  bool mem_nonzero = false;
  for (const auto& reading : s.readings) {
    const auto& name = s.catalog->family_of(reading.series).name;
    if (name == "node_cpu_seconds_total" && reading.value.bits != 0) {
      cpu_nonzero = true;
    }
    if (name == "node_memory_MemTotal_bytes" && reading.value.bits != 0) {
      mem_nonzero = true;
    }
  }
  EXPECT_TRUE(cpu_nonzero);
  EXPECT_TRUE(mem_nonzero);
}

}  // namespace
}  // namespace gridnode::drivers
