#pragma once

#include <string>
#include <system_error>

#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

// mbedTLS's negative error codes as a std::error_category named "mbedtls". message() is
// mbedtls_strerror's text followed by the code, e.g.
// "ECP - The signature is not valid (-0x4E00)", so one log format covers errno and mbedTLS.
const std::error_category& mbedtls_category();

// Error{{rc, mbedtls_category()}, context}; `context` names what we were doing
// ("mbedtls_pk_parse_key: node key"). `rc` is the (negative) mbedTLS return code.
platform::Error mbedtls_error(int rc, std::string context);

}  // namespace gridnode::crypto
