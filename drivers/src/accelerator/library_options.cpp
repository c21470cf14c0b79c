#include "accelerator/library_options.hpp"

#include <algorithm>

namespace gridnode::drivers::accelerators {

platform::Result<void> read_library_options(const DriverContext& context,
                                            const OptionSection& section, std::string& library,
                                            std::chrono::milliseconds& call_timeout) {
  const OptionReader read(section);
  if (auto ok = read.only({"library", "call_timeout"}); !ok) {
    return tl::unexpected(ok.error());
  }
  auto path = read.string("library");
  if (!path) {
    return tl::unexpected(path.error());
  }
  if (*path) {
    library = **path;
  }
  auto timeout = read.seconds("call_timeout", 0.01, 60);
  if (!timeout) {
    return tl::unexpected(timeout.error());
  }
  const auto wanted = timeout->value_or(std::chrono::milliseconds(call_timeout));
  call_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::min<std::chrono::nanoseconds>(wanted, context.sweep_timeout / 2));
  return {};
}

}  // namespace gridnode::drivers::accelerators
