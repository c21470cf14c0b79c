#include "gridnode/crypto/error.hpp"

#include <mbedtls/error.h>

#include <cstdio>

namespace gridnode::crypto {
namespace {

class MbedtlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mbedtls"; }

  std::string message(int ev) const override {
    char text[256];
    mbedtls_strerror(ev, text, sizeof text);
    char code[24];
    // pk_sign.c's "-0x%04x" form, upper case as mbedTLS's headers spell the codes.
    std::snprintf(code, sizeof code, " (%s0x%04X)", ev < 0 ? "-" : "",
                  static_cast<unsigned>(ev < 0 ? -ev : ev));
    return std::string(text) + code;
  }
};

}  // namespace

const std::error_category& mbedtls_category() {
  // A function-local static: no global constructor, and every caller sees one category object
  // (error_code comparison compares category addresses).
  static const MbedtlsCategory category;
  return category;
}

platform::Error mbedtls_error(int rc, std::string context) {
  return platform::Error{std::error_code(rc, mbedtls_category()), std::move(context)};
}

}  // namespace gridnode::crypto
