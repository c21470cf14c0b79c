#include "nvml/nvml_options.hpp"

#include "accelerator/library_options.hpp"

namespace gridnode::drivers::nvml {

platform::Result<NvmlOptions> options(const DriverContext& context, const OptionSection& section) {
  NvmlOptions o;
  o.roots = context.roots;
  o.power = context.nvml_power;
  if (auto ok = accelerators::read_library_options(context, section, o.library, o.call_timeout);
      !ok) {
    return tl::unexpected(ok.error());
  }
  return o;
}

}  // namespace gridnode::drivers::nvml
