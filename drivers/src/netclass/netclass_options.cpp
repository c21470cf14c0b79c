#include "netclass/netclass_options.hpp"

#include <regex>

namespace gridnode::drivers::netclass {

platform::Result<NetclassOptions> options(const DriverContext& context,
                                          const OptionSection& section) {
  const OptionReader read(section);
  if (auto ok = read.only({"ignored_devices", "ignore_invalid_speed"}); !ok) {
    return tl::unexpected(ok.error());
  }
  NetclassOptions o;
  o.roots = context.roots;
  auto ignored = read.string("ignored_devices");
  if (!ignored) {
    return tl::unexpected(ignored.error());
  }
  if (*ignored) {
    try {
      std::regex check(**ignored, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return tl::unexpected(read.bad("ignored_devices", std::string("not a regex: ") + e.what()));
    }
    o.ignored_devices = **ignored;
  }
  auto speed = read.boolean("ignore_invalid_speed");
  if (!speed) {
    return tl::unexpected(speed.error());
  }
  o.ignore_invalid_speed = speed->value_or(o.ignore_invalid_speed);
  return o;
}

}  // namespace gridnode::drivers::netclass
