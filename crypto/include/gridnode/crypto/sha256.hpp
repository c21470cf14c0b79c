#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

using Digest = std::array<std::uint8_t, 32>;  // SHA-256
using Bytes = std::vector<std::uint8_t>;

// One-shot SHA-256. Never fails (the software implementation has no failure path). Thread-safe.
Digest sha256(std::span<const std::uint8_t> data);
Digest sha256(std::string_view data);

// Incremental SHA-256 over mbedtls_sha256_context, kept inline (no heap allocation).
// Not copyable; movable (the moved-from object starts afresh). Reusable: finish() returns the
// digest and restarts, so one object can hash message after message. One thread at a time.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::uint8_t> data);
  void update(std::string_view data);
  // The digest of everything given since construction or the last finish(); then restarts.
  Digest finish();
  // Forgets what was given so far.
  void reset();

 private:
  // Storage for an mbedtls_sha256_context (108 bytes in 2.28); sha256.cpp checks size and
  // alignment at compile time, so mbedTLS's header stays out of ours.
  alignas(8) unsigned char ctx_[128];
};

// Lowercase hex, two characters per byte.
std::string to_hex(std::span<const std::uint8_t> bytes);

// Exactly 64 hex digits (either case) to a Digest; anything else is invalid_argument.
[[nodiscard]] platform::Result<Digest> digest_from_hex(std::string_view hex);
// Exactly 2 * out.size() hex digits (either case) into `out`.
[[nodiscard]] platform::Result<void> from_hex(std::string_view hex, std::span<std::uint8_t> out);

}  // namespace gridnode::crypto
