#include "gridnode/platform/result.hpp"

namespace gridnode::platform {

std::string Error::message() const {
  if (context.empty()) {
    return code.message();
  }
  return context + ": " + code.message();
}

tl::unexpected<Error> fail_errno(int err, std::string context) {
  return tl::unexpected<Error>(Error{std::error_code(err, std::generic_category()),
                                     std::move(context)});
}

}  // namespace gridnode::platform
