#include "gridnode/agent/spool_eviction.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace gridnode::agent {
namespace {

// Segments of 100 bytes each: the first two acknowledged, then reports 21-30 and 31-40.
std::vector<SegmentLoss> four_segments() {
  return {{100, 0, std::numeric_limits<std::uint64_t>::max(), 0},
          {100, 0, std::numeric_limits<std::uint64_t>::max(), 0},
          {100, 10, 21, 30},
          {100, 10, 31, 40}};
}

EvictionRequest request(std::uint64_t max_bytes) {
  EvictionRequest r;
  r.max_bytes = max_bytes;
  r.disk_bytes = 400;
  r.segments = 4;
  r.record_bytes = 30;
  r.roll_bytes = 20;
  r.gap_bytes = 15;
  return r;
}

struct Asked {
  std::vector<SegmentLoss> segments;
  std::vector<std::size_t> asked;
  SegmentLoss operator()(std::size_t i) {
    asked.push_back(i);
    return segments.at(i);
  }
};

TEST(SpoolEviction, NothingGoesWhileTheAppendFits) {
  Asked loss{four_segments(), {}};
  auto plan = plan_eviction(request(430), loss).value();
  EXPECT_EQ(plan.drops, 0u);
  EXPECT_EQ(plan.to, 0u);
  EXPECT_EQ(plan.need, 30u);
  EXPECT_TRUE(loss.asked.empty());
}

TEST(SpoolEviction, AcknowledgedSegmentsGoWithoutAGap) {
  Asked loss{four_segments(), {}};
  auto plan = plan_eviction(request(420), loss).value();  // 400 + 30 > 420: one must go
  EXPECT_EQ(plan.drops, 1u);
  EXPECT_EQ(plan.drop_bytes, 100u);
  EXPECT_EQ(plan.lost, 0u);
  EXPECT_EQ(plan.to, 0u);  // nothing unacknowledged went: no gap record, no reserve
  EXPECT_EQ(plan.need, 30u);
  EXPECT_EQ(loss.asked, (std::vector<std::size_t>{0}));
}

TEST(SpoolEviction, UnacknowledgedReportsDroppedAreCoveredByTheGap) {
  Asked loss{four_segments(), {}};
  // Room for 130 bytes: the three oldest go (the gap reserve counts once something
  // unacknowledged goes), the one appended to stays.
  auto plan = plan_eviction(request(150), loss).value();
  EXPECT_EQ(plan.drops, 3u);
  EXPECT_FALSE(plan.roll);
  EXPECT_EQ(plan.lost, 10u);
  EXPECT_EQ(plan.from, 21u);
  EXPECT_EQ(plan.to, 30u);
  EXPECT_EQ(plan.need, 45u);
  EXPECT_EQ(loss.asked, (std::vector<std::size_t>{0, 1, 2}));
}

TEST(SpoolEviction, TheLastSegmentGoesByRollingToANewOne) {
  Asked loss{four_segments(), {}};
  auto plan = plan_eviction(request(90), loss).value();
  EXPECT_TRUE(plan.roll);
  EXPECT_EQ(plan.drops, 4u);
  EXPECT_EQ(plan.lost, 20u);
  EXPECT_EQ(plan.from, 21u);
  EXPECT_EQ(plan.to, 40u);
  EXPECT_EQ(plan.need, 30u + 20u + 15u);
}

TEST(SpoolEviction, AnAppendLargerThanTheBoundIsRefused) {
  Asked loss{four_segments(), {}};
  auto plan = plan_eviction(request(60), loss);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, std::errc::no_buffer_space);
  EXPECT_EQ(plan.error().context,
            "spool: a report needing 65 bytes does not fit in max_bytes 60");
}

TEST(SpoolEviction, APendingGapIsCarriedAndReserved) {
  Asked loss{four_segments(), {}};
  EvictionRequest r = request(445);
  r.pending_gap = std::pair<std::uint64_t, std::uint64_t>{5, 9};
  auto plan = plan_eviction(r, loss).value();  // 400 + 30 + 15 fits exactly
  EXPECT_EQ(plan.drops, 0u);
  EXPECT_EQ(plan.from, 5u);
  EXPECT_EQ(plan.to, 9u);
  EXPECT_EQ(plan.need, 45u);

  r.max_bytes = 444;  // one byte short: the oldest (acknowledged) goes, the range stays
  Asked again{four_segments(), {}};
  plan = plan_eviction(r, again).value();
  EXPECT_EQ(plan.drops, 1u);
  EXPECT_EQ(plan.from, 5u);
  EXPECT_EQ(plan.to, 9u);
}

TEST(SpoolEviction, WithoutASignerDropsStillHappenAndReserveNothing) {
  Asked loss{four_segments(), {}};
  EvictionRequest r = request(150);
  r.gap_bytes = 0;
  auto plan = plan_eviction(r, loss).value();
  EXPECT_EQ(plan.drops, 3u);
  EXPECT_EQ(plan.to, 30u);
  EXPECT_EQ(plan.need, 30u);
}

}  // namespace
}  // namespace gridnode::agent
