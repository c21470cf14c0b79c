#pragma once

#include <string>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace gridnode::platform {

// What went wrong, and where. `code` says what kind of failure it is (errno, mbedTLS and NVML
// map onto std::error_code categories); `context` says what we were doing, e.g. the path.
struct Error {
  std::error_code code;
  std::string context;

  // "context: message", the form every log line and CLI answer uses.
  std::string message() const;
};

// A value or an Error, never "OK but empty". Functions returning one are [[nodiscard]].
template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::errc code, std::string context) {
  return tl::unexpected<Error>(Error{std::make_error_code(code), std::move(context)});
}

inline tl::unexpected<Error> fail(std::error_code code, std::string context) {
  return tl::unexpected<Error>(Error{code, std::move(context)});
}

// errno (as set by a failed system call) as an Error.
tl::unexpected<Error> fail_errno(int err, std::string context);

}  // namespace gridnode::platform
