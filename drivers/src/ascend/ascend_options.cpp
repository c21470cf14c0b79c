#include "ascend/ascend_options.hpp"

#include "accelerator/library_options.hpp"

namespace gridnode::drivers::ascend {

platform::Result<AscendOptions> options(const DriverContext& context,
                                        const OptionSection& section) {
  AscendOptions o;
  o.roots = context.roots;
  if (auto ok = accelerators::read_library_options(context, section, o.library, o.call_timeout);
      !ok) {
    return tl::unexpected(ok.error());
  }
  return o;
}

}  // namespace gridnode::drivers::ascend
