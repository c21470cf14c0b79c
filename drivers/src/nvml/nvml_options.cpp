#include "nvml/nvml_options.hpp"

#include <algorithm>

namespace gridnode::drivers::nvml {

platform::Result<NvmlOptions> options(const DriverContext& context,
                                      const OptionSection& section) {
  const OptionReader read(section);
  if (auto ok = read.only({"library", "call_timeout"}); !ok) {
    return tl::unexpected(ok.error());
  }
  NvmlOptions o;
  o.roots = context.roots;
  o.power = context.nvml_power;
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
  // A sweep may wait out two NVML deadlines (the control call, then the GPUs' calls in
  // parallel): at most half the sweep's, so that the sampler never calls the driver stalled
  // before it could say which GPU hung.
  const auto wanted = timeout->value_or(std::chrono::milliseconds(o.call_timeout));
  o.call_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::min<std::chrono::nanoseconds>(wanted, context.sweep_timeout / 2));
  return o;
}

}  // namespace gridnode::drivers::nvml
