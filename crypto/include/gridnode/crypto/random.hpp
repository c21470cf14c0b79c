#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

// A CTR-DRBG (AES-256) seeded from the OS entropy source (mbedtls_entropy: getrandom(2), else
// /dev/urandom), reseeded from it every 10,000 requests as mbedTLS does by default.
// Neither copyable nor movable: the DRBG context points at the entropy context beside it, and
// mbedTLS keeps `this` as p_rng; hold it by unique_ptr. mbedTLS locks the DRBG (threading is on
// in Debian's build), so several threads may draw from one object.
class Random {
 public:
  // Seeds the generator; fails (entropy source failed) only on a broken host.
  // `personalization` separates the streams of different programs (mbedTLS's custom data).
  [[nodiscard]] static platform::Result<std::unique_ptr<Random>> create(
      std::string_view personalization = "gridnode");

  ~Random();
  Random(const Random&) = delete;
  Random& operator=(const Random&) = delete;
  Random(Random&&) = delete;
  Random& operator=(Random&&) = delete;

  // Fills `out` (any length) with random bytes.
  [[nodiscard]] platform::Result<void> fill(std::span<std::uint8_t> out);

  // The f_rng/p_rng pair for mbedTLS calls inside crypto/: pass `&Random::rng, &random`.
  // `self` must be a Random*. Returns 0 or an mbedTLS error code.
  static int rng(void* self, unsigned char* out, std::size_t len);

 private:
  struct State;
  explicit Random(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace gridnode::crypto
