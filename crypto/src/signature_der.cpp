// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3), by hand: the format
// is tiny and fixed, and doing it here keeps BM_SignatureToDer to one small allocation.

#include <algorithm>
#include <string>

#include "gridnode/crypto/keys.hpp"

namespace gridnode::crypto {
namespace {

constexpr std::uint8_t kSequence = 0x30;
constexpr std::uint8_t kInteger = 0x02;

// The minimal DER content of a 32-byte unsigned big-endian integer: leading zero octets
// dropped, one 0x00 put back when the top bit is set (else it would read as negative).
struct IntegerContent {
  const std::uint8_t* bytes;  // the magnitude, without leading zeros
  std::size_t size;           // its length (0 for the value zero)
  bool pad;                   // a 0x00 octet goes first
  std::size_t length() const { return size == 0 ? 1 : size + (pad ? 1 : 0); }
};

IntegerContent integer_content(const std::uint8_t* value) {
  std::size_t i = 0;
  while (i < 32 && value[i] == 0) {
    ++i;
  }
  return IntegerContent{value + i, 32 - i, i < 32 && (value[i] & 0x80) != 0};
}

std::uint8_t* put_integer(std::uint8_t* out, const IntegerContent& c) {
  *out++ = kInteger;
  *out++ = static_cast<std::uint8_t>(c.length());
  if (c.size == 0 || c.pad) {
    *out++ = 0;
  }
  return std::copy(c.bytes, c.bytes + c.size, out);
}

platform::Result<std::size_t> get_integer(std::span<const std::uint8_t> der, std::size_t pos,
                                          std::uint8_t* out, const char* name) {
  auto bad = [name](const std::string& why) {
    return platform::fail(std::errc::invalid_argument,
                          std::string("DER signature: ") + name + ": " + why);
  };
  if (der.size() - pos < 2) {
    return bad("truncated");
  }
  if (der[pos] != kInteger) {
    return bad("not an INTEGER");
  }
  std::size_t len = der[pos + 1];
  if (len & 0x80) {
    return bad("long-form length");  // never needed for 33 bytes or less
  }
  if (len == 0) {
    return bad("empty INTEGER");
  }
  pos += 2;
  if (der.size() - pos < len) {
    return bad("truncated");
  }
  const std::uint8_t* v = der.data() + pos;
  if (v[0] & 0x80) {
    return bad("negative");
  }
  if (len > 1 && v[0] == 0 && (v[1] & 0x80) == 0) {
    return bad("non-minimal encoding (superfluous leading zero)");
  }
  std::size_t n = len;
  if (v[0] == 0) {
    ++v;
    --n;
  }
  if (n > 32) {
    return bad("longer than 32 bytes");
  }
  std::fill(out, out + 32, 0);
  std::copy(v, v + n, out + (32 - n));
  return pos + len;
}

}  // namespace

std::size_t signature_to_der(const Signature& signature, DerSignature& out) {
  IntegerContent r = integer_content(signature.data());
  IntegerContent s = integer_content(signature.data() + 32);
  std::size_t body = 2 + r.length() + 2 + s.length();  // at most 70: short-form length
  out[0] = kSequence;
  out[1] = static_cast<std::uint8_t>(body);
  std::uint8_t* end = put_integer(put_integer(out.data() + 2, r), s);
  return static_cast<std::size_t>(end - out.data());
}

platform::Result<Bytes> signature_to_der(const Signature& signature) {
  DerSignature der;
  const std::size_t n = signature_to_der(signature, der);
  return Bytes(der.begin(), der.begin() + static_cast<std::ptrdiff_t>(n));
}

platform::Result<Signature> signature_from_der(std::span<const std::uint8_t> der) {
  if (der.size() < 2 || der[0] != kSequence) {
    return platform::fail(std::errc::invalid_argument, "DER signature: not a SEQUENCE");
  }
  std::size_t len = der[1];
  if (len & 0x80) {
    return platform::fail(std::errc::invalid_argument,
                          "DER signature: long-form SEQUENCE length (an ECDSA P-256 signature "
                          "is at most 72 bytes)");
  }
  if (der.size() != 2 + len) {
    return platform::fail(std::errc::invalid_argument,
                          "DER signature: SEQUENCE length " + std::to_string(len) + " but " +
                              std::to_string(der.size() - 2) + " bytes follow");
  }
  Signature sig{};
  auto after_r = get_integer(der, 2, sig.data(), "r");
  if (!after_r) {
    return tl::unexpected(after_r.error());
  }
  auto after_s = get_integer(der, *after_r, sig.data() + 32, "s");
  if (!after_s) {
    return tl::unexpected(after_s.error());
  }
  if (*after_s != der.size()) {
    return platform::fail(std::errc::invalid_argument,
                          "DER signature: " + std::to_string(der.size() - *after_s) +
                              " bytes after s inside the SEQUENCE");
  }
  return sig;
}

}  // namespace gridnode::crypto
