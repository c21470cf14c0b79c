#include "cndev/cndev_options.hpp"

#include "accelerator/library_options.hpp"

namespace gridnode::drivers::cndev {

platform::Result<CndevOptions> options(const DriverContext& context, const OptionSection& section) {
  CndevOptions o;
  o.roots = context.roots;
  if (auto ok = accelerators::read_library_options(context, section, o.library, o.call_timeout);
      !ok) {
    return tl::unexpected(ok.error());
  }
  return o;
}

}  // namespace gridnode::drivers::cndev
