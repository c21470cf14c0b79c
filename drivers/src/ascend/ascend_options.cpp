#include "ascend/ascend_options.hpp"

#include <algorithm>

namespace gridnode::drivers::ascend {

platform::Result<AscendOptions> options(const DriverContext& context,
                                        const OptionSection& section) {
  const OptionReader read(section);
  if (auto ok = read.only({"library", "call_timeout"}); !ok) {
    return tl::unexpected(ok.error());
  }
  AscendOptions o;
  o.roots = context.roots;
  auto library = read.string("library");
  if (!library) {
    return tl::unexpected(library.error());
  }
  if (*library) {
    o.library = **library;
  }
  auto timeout = read.seconds("call_timeout", 0.01, 60);
  if (!timeout) {
    return tl::unexpected(timeout.error());
  }
  // As nvml's: discovery, then the chips' calls in parallel, inside the sweep's deadline.
  const auto wanted = timeout->value_or(std::chrono::milliseconds(o.call_timeout));
  o.call_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::min<std::chrono::nanoseconds>(wanted, context.sweep_timeout / 2));
  return o;
}

}  // namespace gridnode::drivers::ascend
