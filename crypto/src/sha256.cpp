#include "gridnode/crypto/sha256.hpp"

#include <mbedtls/sha256.h>

#include <cstdlib>
#include <new>

namespace gridnode::crypto {
namespace {

// The software SHA-256 of mbedTLS 2.28 cannot fail (its _ret functions return 0 unless an
// _ALT hardware implementation is configured, which Debian's build is not). A failure here is
// a broken library, not input: crash rather than hand out a wrong digest.
void check(int rc) {
  if (rc != 0) {
    std::abort();
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

Digest sha256(std::span<const std::uint8_t> data) {
  Digest out;
  check(mbedtls_sha256_ret(data.data(), data.size(), out.data(), 0));
  return out;
}

Digest sha256(std::string_view data) {
  Digest out;
  check(mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                           out.data(), 0));
  return out;
}

namespace {
mbedtls_sha256_context* ctx(unsigned char* storage) {
  return std::launder(reinterpret_cast<mbedtls_sha256_context*>(storage));
}
}  // namespace

Sha256::Sha256() {
  static_assert(sizeof(mbedtls_sha256_context) <= sizeof(ctx_));
  static_assert(alignof(mbedtls_sha256_context) <= 8);
  auto* c = new (ctx_) mbedtls_sha256_context;
  mbedtls_sha256_init(c);
  check(mbedtls_sha256_starts_ret(c, 0));
}

Sha256::~Sha256() { mbedtls_sha256_free(ctx(ctx_)); }

Sha256::Sha256(Sha256&& other) noexcept : Sha256() {
  mbedtls_sha256_clone(ctx(ctx_), ctx(other.ctx_));
  other.reset();
}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    mbedtls_sha256_clone(ctx(ctx_), ctx(other.ctx_));
    other.reset();
  }
  return *this;
}

void Sha256::update(std::span<const std::uint8_t> data) {
  check(mbedtls_sha256_update_ret(ctx(ctx_), data.data(), data.size()));
}

void Sha256::update(std::string_view data) {
  check(mbedtls_sha256_update_ret(ctx(ctx_), reinterpret_cast<const unsigned char*>(data.data()),
                                  data.size()));
}

Digest Sha256::finish() {
  Digest out;
  check(mbedtls_sha256_finish_ret(ctx(ctx_), out.data()));
  reset();
  return out;
}

void Sha256::reset() { check(mbedtls_sha256_starts_ret(ctx(ctx_), 0)); }

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0x0f];
  }
  return out;
}

platform::Result<void> from_hex(std::string_view hex, std::span<std::uint8_t> out) {
  if (hex.size() != out.size() * 2) {
    return platform::fail(std::errc::invalid_argument,
                          "expected " + std::to_string(out.size() * 2) + " hex digits, got " +
                              std::to_string(hex.size()) + " characters");
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return platform::fail(
          std::errc::invalid_argument,
          "not a hex digit at offset " + std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
    }
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return {};
}

platform::Result<Digest> digest_from_hex(std::string_view hex) {
  Digest out{};
  if (auto r = from_hex(hex, out); !r) {
    return platform::fail(std::errc::invalid_argument, "digest: " + r.error().context);
  }
  return out;
}

}  // namespace gridnode::crypto
