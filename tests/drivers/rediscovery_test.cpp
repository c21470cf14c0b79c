#include "../../drivers/src/rediscovery.hpp"

#include <gtest/gtest.h>

namespace gridnode::drivers {
namespace {

TEST(Rediscovery, FirstSweepThenEveryKEverySweepsOrWhenAsked) {
  Rediscovery r;
  EXPECT_TRUE(r.due());  // first sweep
  EXPECT_TRUE(r.due());  // still, until a walk succeeds
  r.done();
  for (std::uint32_t i = 1; i < Rediscovery::kEvery; ++i) {
    EXPECT_FALSE(r.due()) << "sweep " << i;
  }
  EXPECT_TRUE(r.due());  // the kEvery-th sweep after the walk
  r.done();
  EXPECT_FALSE(r.due());
  r.request();  // a reading vanished
  EXPECT_TRUE(r.due());
  r.done();
  EXPECT_FALSE(r.due());
}

}  // namespace
}  // namespace gridnode::drivers
