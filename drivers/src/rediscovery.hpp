#pragma once

#include <cstdint>

namespace gridnode::drivers {

// When a "discover once, read many" driver walks its tree again: on its first sweep, after a
// reading vanished (request()), and every kEvery sweeps otherwise, so that chips whose module
// loads late are found without a restart. One owner, the driver's sweeping thread.
class Rediscovery {
 public:
  static constexpr std::uint32_t kEvery = 60;

  // Whether this sweep must walk first; counts the sweep.
  bool due() { return pending_ || ++sweeps_ >= kEvery; }
  // A walk succeeded: the next one is due kEvery sweeps from now.
  void done() {
    pending_ = false;
    sweeps_ = 0;
  }
  // Walk again at the next sweep (a chip went away, or the last walk failed).
  void request() { pending_ = true; }

 private:
  std::uint32_t sweeps_ = 0;
  bool pending_ = true;
};

}  // namespace gridnode::drivers
