#include "gridnode/drivers/mdadm.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../../drivers/src/mdadm/mdstat_parse.hpp"
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
using mdadm::Activity;
using mdadm::MdDevice;

std::unique_ptr<Driver> driver_at(const std::string& root) {
  MdadmOptions options;
  options.roots.sysfs = root + "/sys";
  options.roots.procfs = root + "/proc";
  return make_mdadm_driver(std::move(options));
}

std::vector<MdDevice> parse(std::string_view text) {
  std::vector<MdDevice> out;
  mdadm::MdstatReader reader(text);
  MdDevice md;
  while (reader.next(md)) {
    out.push_back(md);
  }
  return out;
}

TEST(MdstatParse, ActiveRaid1) {
  auto md = parse(
      "Personalities : [raid1]\n"
      "md0 : active raid1 sdb1[1] sda1[0]\n"
      "      1046528 blocks super 1.2 [2/2] [UU]\n"
      "      \n"
      "unused devices: <none>\n");
  ASSERT_EQ(md.size(), 1u);
  EXPECT_EQ(md[0].name, "md0");
  EXPECT_TRUE(md[0].error.empty()) << md[0].error;
  EXPECT_EQ(md[0].activity, Activity::active);
  EXPECT_EQ(md[0].disks_total, 2);
  EXPECT_EQ(md[0].disks_active, 2);
  EXPECT_EQ(md[0].blocks_total, 1046528);
  EXPECT_EQ(md[0].blocks_synced, 1046528);
}

TEST(MdstatParse, RecoveryAfterABitmapLineAndDegradedCounts) {
  auto md = parse(
      "md6 : active raid1 sdb2[2](F) sdc[1](S) sda2[0]\n"
      "      195310144 blocks [2/1] [U_]\n"
      "      bitmap: 0/30 pages [0KB], 65536KB chunk\n"
      "      [=>...................]  recovery =  8.5% (16775552/195310144) finish=17.0min "
      "speed=259783K/sec\n"
      "\n");
  ASSERT_EQ(md.size(), 1u);
  EXPECT_TRUE(md[0].error.empty()) << md[0].error;
  EXPECT_EQ(md[0].activity, Activity::recovering);
  EXPECT_EQ(md[0].disks_total, 2);
  EXPECT_EQ(md[0].disks_active, 1);
  EXPECT_EQ(md[0].disks_down, 1);
  EXPECT_EQ(md[0].disks_failed, 1);
  EXPECT_EQ(md[0].disks_spare, 1);
  EXPECT_EQ(md[0].blocks_synced, 16775552);
}

TEST(MdstatParse, PendingAndDelayedHaveNothingSynced) {
  auto md = parse(
      "md9 : active raid1 sdc2[2] sdd2[3] sdb2[1] sda2[0] sde[4](F) sdf[5](F) sdg[6](S)\n"
      "      523968 blocks super 1.2 [4/4] [UUUU]\n"
      "      resync=DELAYED\n"
      "\n"
      "md11 : active (auto-read-only) raid1 sdb2[0] sdc2[1]\n"
      "      4190208 blocks super 1.2 [2/2] [UU]\n"
      "      resync=PENDING\n"
      "\n");
  ASSERT_EQ(md.size(), 2u);
  for (const auto& d : md) {
    EXPECT_TRUE(d.error.empty()) << d.error;
    EXPECT_EQ(d.activity, Activity::resyncing);
    EXPECT_EQ(d.blocks_synced, 0);
  }
  EXPECT_EQ(md[0].disks_failed, 2);
}

TEST(MdstatParse, CheckRaid0LinearAndInactive) {
  auto md = parse(
      "md201 : active raid1 sda3[0] sdb3[1]\n"
      "      1993728 blocks super 1.2 [2/2] [UU]\n"
      "      [=>...................]  check =  5.7% (114176/1993728) finish=0.2min "
      "speed=114176K/sec\n"
      "\n"
      "md10 : active raid0 sda1[0] sdb1[1] sdc1[2]\n"
      "       314159265 blocks 64k chunks\n"
      "\n"
      "md120 : active linear sda1[1] sdb1[0]\n"
      "        2095104 blocks super 1.2 0k rounding\n"
      "\n"
      "md219 : inactive sdb[2](S) sdc[1](S) sda[0](S)\n"
      "        7932 blocks super external:imsm\n"
      "\n");
  ASSERT_EQ(md.size(), 4u);
  EXPECT_EQ(md[0].activity, Activity::checking);
  EXPECT_EQ(md[0].blocks_synced, 114176);
  EXPECT_EQ(md[1].disks_total, 3);
  EXPECT_EQ(md[1].disks_active, 3);
  EXPECT_EQ(md[2].disks_total, 2);
  EXPECT_EQ(md[3].activity, Activity::inactive);
  EXPECT_EQ(md[3].disks_total, 0);
  EXPECT_EQ(md[3].disks_spare, 3);
  EXPECT_EQ(md[3].blocks_total, 7932);
  EXPECT_EQ(md[3].blocks_synced, 7932);
  for (const auto& d : md) {
    EXPECT_TRUE(d.error.empty()) << d.name << ": " << d.error;
  }
}

TEST(MdstatParse, ReshapeIsActiveAndInSync) {
  // procfs 0.8 knows recovery, resync and check only.
  auto md = parse(
      "md6 : active raid5 sdu1[4] sdt1[2] sds1[1] sdr1[0]\n"
      "      5860147200 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/4] [UUUU]\n"
      "      [====>................]  reshape = 21.3% (416113664/1953382400) finish=351.6min\n"
      "\n");
  ASSERT_EQ(md.size(), 1u);
  EXPECT_EQ(md[0].activity, Activity::active);
  EXPECT_EQ(md[0].blocks_synced, 5860147200);
}

TEST(MdstatParse, BadDevicesAreReportedAndTheRestParsed) {
  auto md = parse(
      "md0 : broken\n"
      "md1 : active raid1 sdb1[1] sda1[0]\n"
      "      lots blocks [2/2] [UU]\n"
      "\n"
      "md2 : active raid1 sdb1[1] sda1[0]\n"
      "      100 blocks [2/2] [UX]\n"
      "\n"
      "md3 : active raid1 sdb1[1] sda1[0]\n"
      "      99999999999999999999 blocks [2/2] [UU]\n"
      "\n"
      "md4 : active raid1 sdb1[1] sda1[0]\n"
      "      100 blocks [2/2] [UU]\n"
      "      [=>....]  resync =  5.7% (12/) finish=0.2min speed=1K/sec\n"
      "\n"
      "md5 : active raid1 sdb1[1] sda1[0]\n"
      "      100 blocks [2/2] [UU]\n"
      "\n"
      "md6 : active raid1 sdb1[1] sda1[0]\n"
      "      100 blocks [2/2] [UU]");
  ASSERT_EQ(md.size(), 7u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(md[i].error.empty()) << md[i].name;
  }
  EXPECT_TRUE(md[5].error.empty()) << md[5].error;
  EXPECT_EQ(md[5].blocks_total, 100);
  EXPECT_EQ(md[6].error, "too few lines for md device");
}

TEST(MdstatParse, EmptyAndGarbageTextHaveNoDevicesOrOnlyBadOnes) {
  EXPECT_TRUE(parse("").empty());
  EXPECT_TRUE(parse("Personalities : \nunused devices: <none>\n").empty());
  auto junk = parse(std::string("\x01\x02 \xff\n\0\0\n", 8));
  for (const auto& d : junk) {
    EXPECT_FALSE(d.error.empty());
  }
}

std::string read_fixture(const std::string& rel) {
  std::ifstream in(fixture_path(rel), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every device the reader returns is either an error or consistent with its own text.
void expect_sane(const std::vector<MdDevice>& devices, std::string_view text) {
  for (const auto& d : devices) {
    ASSERT_FALSE(d.name.empty());
    ASSERT_GE(d.name.data(), text.data());
    ASSERT_LE(d.name.data() + d.name.size(), text.data() + text.size());
    if (d.error.empty()) {
      EXPECT_GE(d.disks_failed, 0);
      EXPECT_GE(d.disks_spare, 0);
      EXPECT_GE(d.disks_down, 0);
      EXPECT_GE(d.blocks_total, 0);
      EXPECT_GE(d.blocks_synced, 0);
    }
  }
}

TEST(MdstatParse, EveryTruncationOfEveryFixtureParsesWithoutHarm) {
  for (const char* c :
       {"active", "inactive", "recovering", "resync", "check", "degraded", "malformed"}) {
    std::string text = read_fixture(std::string("mdadm/") + c + "/proc/mdstat");
    ASSERT_FALSE(text.empty()) << c;
    std::size_t full = parse(text).size();
    for (std::size_t n = 0; n <= text.size(); ++n) {
      std::string_view cut(text.data(), n);
      auto devices = parse(cut);
      expect_sane(devices, cut);
      // A cut "Personalities" or "unused devices" line reads as one more (bad) device.
      EXPECT_LE(devices.size(), full + 1) << c << " cut at " << n;
    }
  }
}

TEST(MdstatParse, RandomlyDamagedTextParsesWithoutHarm) {
  std::string text = read_fixture("mdadm/recovering/proc/mdstat");
  std::mt19937 rng(20261207);  // fixed: the same damage every run
  const std::string alphabet = " \n\t[]()/_U0123456789:FSblocksrecoveryresynccheck=%";
  for (int round = 0; round < 2000; ++round) {
    std::string damaged = text;
    for (int k = 0; k < 4; ++k) {
      std::size_t at = rng() % damaged.size();
      switch (rng() % 3) {
        case 0:
          damaged[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          damaged.erase(at, 1 + rng() % 8);
          break;
        default:
          damaged.insert(at, 1, static_cast<char>(rng() % 256));
          break;
      }
      if (damaged.empty()) {
        damaged = "x";
      }
    }
    expect_sane(parse(damaged), damaged);
  }
}

TEST(MdstatParse, HugeValues) {
  auto md = parse(
      "md0 : active raid1 sdb1[1] sda1[0]\n"
      "      9223372036854775807 blocks super 1.2 [9223372036854775807/9223372036854775807] "
      "[UU]\n"
      "      [>....]  resync =  0.0% (9223372036854775807/9223372036854775807) finish=1min "
      "speed=1K/sec\n"
      "\n"
      "md1 : active raid1 sdb1[1] sda1[0]\n"
      "      100 blocks super 1.2 [9223372036854775808/2] [UU]\n"
      "\n");
  ASSERT_EQ(md.size(), 2u);
  EXPECT_TRUE(md[0].error.empty()) << md[0].error;
  EXPECT_EQ(md[0].blocks_total, INT64_MAX);
  EXPECT_EQ(md[0].disks_total, INT64_MAX);
  EXPECT_EQ(md[0].blocks_synced, INT64_MAX);
  EXPECT_FALSE(md[1].error.empty());  // beyond int64, as ParseInt refuses it
}

TEST(MdadmDriver, TruncatedFileStillSweeps) {
  std::string text = read_fixture("mdadm/degraded/proc/mdstat");
  FakeTree tree;
  auto driver = driver_at(tree.root());
  for (std::size_t n = 0; n <= text.size(); n += 7) {
    tree.write("proc/mdstat", std::string_view(text.data(), n));
    Sweep out = sweep_ok(*driver);
    EXPECT_EQ(out.readings.size() % 11, 0u) << n;
    ASSERT_TRUE(out.catalog);
  }
}

class MdadmFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(MdadmFixture, MatchesGolden) {
  std::string dir = std::string("mdadm/") + GetParam();
  auto driver = driver_at(fixture_path(dir));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size() % 11, 0u);
  expect_golden(sweep_text(out), fixture_path(dir + "/expected.prom"));
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.catalog, out.catalog);
}

INSTANTIATE_TEST_SUITE_P(States, MdadmFixture,
                         ::testing::Values("active", "inactive", "recovering", "resync", "check",
                                           "degraded"));

TEST(MdadmDriver, StatesAreOneHot) {
  auto driver = driver_at(fixture_path("mdadm/recovering"));
  std::string text = sweep_text(sweep_ok(*driver));
  EXPECT_TRUE(has_line(text, "node_md_state{device=\"md0\",state=\"recovering\"} 1"));
  EXPECT_TRUE(has_line(text, "node_md_state{device=\"md0\",state=\"active\"} 0"));
  EXPECT_TRUE(has_line(text, "node_md_state{device=\"md2\",state=\"resync\"} 1"));
  EXPECT_TRUE(has_line(text, "node_md_blocks_synced{device=\"md1\"} 1414765184"));
  EXPECT_TRUE(has_line(text, "node_md_disks{device=\"md1\",state=\"active\"} 3"));
  EXPECT_TRUE(has_line(text, "node_md_disks_required{device=\"md1\"} 4"));
}

TEST(MdadmDriver, MalformedFixtureSkipsOnlyTheBadDevices) {
  auto driver = driver_at(fixture_path("mdadm/malformed"));
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 6u);
  EXPECT_EQ(out.readings.size(), 11u);
  expect_golden(sweep_text(out), fixture_path("mdadm/malformed/expected.prom"));
  Sweep again = sweep_ok(*driver);
  EXPECT_EQ(again.errors, 6u);
  EXPECT_EQ(again.catalog, out.catalog);
}

TEST(MdadmDriver, FamiliesMatchNodeExporter) {
  auto driver = driver_at(fixture_path("mdadm/active"));
  Sweep out = sweep_ok(*driver);
  ASSERT_EQ(out.catalog->families.size(), 5u);
  for (const auto& f : out.catalog->families) {
    EXPECT_EQ(f.type, MetricType::gauge);
    if (f.name == "node_md_state") {
      EXPECT_EQ(f.help, "Indicates the state of md-device.");
    } else if (f.name == "node_md_disks") {
      EXPECT_EQ(f.help, "Number of active/failed/spare disks of device.");
    } else if (f.name == "node_md_disks_required") {
      EXPECT_EQ(f.help, "Total number of disks of device.");
    } else if (f.name == "node_md_blocks") {
      EXPECT_EQ(f.help, "Total number of blocks on device.");
    } else if (f.name == "node_md_blocks_synced") {
      EXPECT_EQ(f.help, "Number of blocks synced on device.");
    } else {
      ADD_FAILURE() << "unexpected family " << f.name;
    }
  }
}

TEST(MdadmDriver, ArraysComingAndGoingRebuildTheCatalog) {
  FakeTree tree;
  std::string md0 =
      "md0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\n";
  std::string md1 =
      "md1 : active raid1 sdd1[1] sdc1[0]\n      2046528 blocks super 1.2 [2/2] [UU]\n\n";
  tree.write("proc/mdstat", "Personalities : [raid1]\n" + md0 + "unused devices: <none>\n");
  auto driver = driver_at(tree.root());
  Sweep first = sweep_ok(*driver);
  EXPECT_EQ(first.readings.size(), 11u);
  // A resync starting changes values only.
  tree.write("proc/mdstat",
             "Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n"
             "      1046528 blocks super 1.2 [2/2] [UU]\n"
             "      [>....]  resync =  1.0% (10465/1046528) finish=9.0min speed=1000K/sec\n\n"
             "unused devices: <none>\n");
  Sweep resync = sweep_ok(*driver);
  EXPECT_EQ(resync.catalog, first.catalog);
  EXPECT_TRUE(has_line(sweep_text(resync), "node_md_blocks_synced{device=\"md0\"} 10465"));
  EXPECT_TRUE(has_line(sweep_text(resync), "node_md_state{device=\"md0\",state=\"resync\"} 1"));
  // A new array: a new catalog, in the same sweep.
  tree.write("proc/mdstat", "Personalities : [raid1]\n" + md0 + md1 + "unused devices: <none>\n");
  Sweep two = sweep_ok(*driver);
  EXPECT_NE(two.catalog, first.catalog);
  EXPECT_EQ(two.readings.size(), 22u);
  EXPECT_EQ(two.errors, 0u);
  // Stopped: gone again.
  tree.write("proc/mdstat", "Personalities : [raid1]\n" + md1 + "unused devices: <none>\n");
  Sweep one = sweep_ok(*driver);
  EXPECT_EQ(one.readings.size(), 11u);
  EXPECT_FALSE(has_line(sweep_text(one), "node_md_blocks{device=\"md0\"} 1046528"));
}

TEST(MdadmDriver, LargeFileIsReadWhole) {
  FakeTree tree;
  std::string text = "Personalities : [raid1]\n";
  for (int i = 0; i < 400; ++i) {  // ~45 KiB: many reads, a grown buffer
    text += "md" + std::to_string(i) + " : active raid1 sdb1[1] sda1[0]\n" +
            "      1046528 blocks super 1.2 [2/2] [UU]\n      \n";
  }
  text += "unused devices: <none>\n";
  tree.write("proc/mdstat", text);
  auto driver = driver_at(tree.root());
  Sweep out = sweep_ok(*driver);
  EXPECT_EQ(out.errors, 0u);
  EXPECT_EQ(out.readings.size(), 400u * 11u);
}

TEST(MdadmDriver, AbsentIsNoSuchFileAndAppearsLater) {
  FakeTree tree;
  tree.mkdir("proc");
  auto driver = driver_at(tree.root());
  Sweep out;
  auto result = driver->sweep(out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, std::errc::no_such_file_or_directory);
  tree.write("proc/mdstat", "Personalities : \nunused devices: <none>\n");
  Sweep none = sweep_ok(*driver);
  EXPECT_TRUE(none.readings.empty());
  ASSERT_TRUE(none.catalog);
  EXPECT_TRUE(none.catalog->series.empty());
}

TEST(MdadmDriver, SteadySweepAllocatesNothing) {
  auto d = driver_at(fixture_path("mdadm/recovering"));
  Sweep s = sweep_ok(*d);
  std::size_t n = s.readings.size();
  s.reset();
  ASSERT_TRUE(d->sweep(s));
  s.reset();
  testing::AllocationCounter allocations;
  allocations.start();
  auto r = d->sweep(s);
  std::size_t allocated = allocations.stop();
  ASSERT_TRUE(r);
  EXPECT_EQ(allocated, 0u);
  EXPECT_EQ(s.readings.size(), n);
}

}  // namespace
}  // namespace gridnode::drivers
