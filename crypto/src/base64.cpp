#include "gridnode/crypto/base64.hpp"

#include <mbedtls/base64.h>

#include "internal.hpp"

namespace gridnode::crypto {

void append_base64(std::span<const std::uint8_t> bytes, std::string& out) {
  const std::size_t at = out.size();
  const std::size_t need = 4 * ((bytes.size() + 2) / 3) + 1;  // mbedTLS writes a NUL
  out.resize(at + need);
  std::size_t written = 0;
  mbedtls_base64_encode(reinterpret_cast<unsigned char*>(out.data() + at), need, &written,
                        bytes.data(), bytes.size());
  out.resize(at + written);
}

platform::Result<std::vector<std::uint8_t>> from_base64(std::string_view text) {
  std::vector<std::uint8_t> out(text.size() / 4 * 3 + 3);
  std::size_t written = 0;
  int rc = mbedtls_base64_decode(out.data(), out.size(), &written,
                                 reinterpret_cast<const unsigned char*>(text.data()), text.size());
  if (rc != 0) {
    return fail_mbedtls(rc, "base64");
  }
  out.resize(written);
  return out;
}

}  // namespace gridnode::crypto
