#include "ipmi/ipmi_options.hpp"

#include <algorithm>
#include <string>

#include "ipmi/freeipmi_bmc.hpp"

namespace gridnode::drivers {

platform::Result<IpmiOptions> ipmi_options(const DriverContext& context,
                                           const OptionSection& section) {
  const OptionReader read(section);
  if (auto ok = read.only({"interface", "device", "host", "port", "username", "password_file",
                           "privilege", "cipher_suite", "workaround_flags", "timeout",
                           "interval"});
      !ok) {
    return tl::unexpected(ok.error());
  }
  IpmiOptions o;
  o.state_dir = context.state_dir.empty() ? std::string() : context.state_dir;
  // Only the first sweep waits for the BMC, and never so long that the sampler calls the
  // driver stalled.
  o.first_wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::min<std::chrono::nanoseconds>(o.first_wait, context.sweep_timeout / 2));

  auto interface = read.string("interface");
  if (!interface) {
    return tl::unexpected(interface.error());
  }
  if (*interface) {
    if (**interface == "inband") {
      o.interface = IpmiInterface::inband;
    } else if (**interface == "lan") {
      o.interface = IpmiInterface::lan;
    } else if (**interface == "lanplus") {
      o.interface = IpmiInterface::lanplus;
    } else {
      return tl::unexpected(read.bad("interface", "must be \"inband\", \"lan\" or \"lanplus\""));
    }
  }
  const bool lan = o.interface != IpmiInterface::inband;

  auto device = read.string("device");
  if (!device) {
    return tl::unexpected(device.error());
  }
  if (*device) {
    if (lan) {
      return tl::unexpected(read.bad("device", "only for interface = \"inband\""));
    }
    o.device = **device;
  }
  // Keys of a LAN connection without a LAN interface are most likely a forgotten `interface`.
  for (std::string_view key : {"host", "port", "username", "password_file", "cipher_suite"}) {
    auto any = read.string(key, true);
    bool present = !any || *any;  // of another type, or a string: either way it is there
    if (!lan && present) {
      return tl::unexpected(
          read.bad(key, "needs interface = \"lanplus\" (or \"lan\"); the default is inband"));
    }
  }
  auto host = read.string("host");
  if (!host) {
    return tl::unexpected(host.error());
  }
  if (lan && !*host) {
    return tl::unexpected(read.bad("host", "needed for a LAN interface"));
  }
  o.host = host->value_or("");
  auto port = read.integer("port", 1, 65535);
  if (!port) {
    return tl::unexpected(port.error());
  }
  o.port = static_cast<std::uint16_t>(port->value_or(623));
  auto username = read.string("username", true);
  if (!username) {
    return tl::unexpected(username.error());
  }
  o.username = username->value_or("");
  auto password_file = read.string("password_file");
  if (!password_file) {
    return tl::unexpected(password_file.error());
  }
  if (*password_file) {
    auto password = read_ipmi_password_file(**password_file);
    if (!password) {
      return tl::unexpected(read.bad("password_file", password.error().message()));
    }
    o.password = std::move(*password);
  }
  auto privilege = read.string("privilege");
  if (!privilege) {
    return tl::unexpected(privilege.error());
  }
  if (*privilege) {
    if (auto ok = ipmi::parse_privilege(**privilege); !ok) {
      return tl::unexpected(read.bad("privilege", "must be \"user\", \"operator\" or \"admin\""));
    }
    o.privilege = **privilege;
  }
  auto cipher = read.integer("cipher_suite", 0, 17);
  if (!cipher) {
    return tl::unexpected(cipher.error());
  }
  o.cipher_suite_id = static_cast<std::uint8_t>(cipher->value_or(3));
  auto flags = read.strings("workaround_flags");
  if (!flags) {
    return tl::unexpected(flags.error());
  }
  if (*flags) {
    if (auto ok = ipmi::parse_workaround_flags(o.interface, **flags); !ok) {
      return tl::unexpected(read.bad("workaround_flags", ok.error().context));
    }
    o.workaround_flags = **flags;
  }
  auto timeout = read.seconds("timeout", 0.1, 60);
  if (!timeout) {
    return tl::unexpected(timeout.error());
  }
  if (*timeout) {
    o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(**timeout);
  }
  auto interval = read.seconds("interval", 1, 3600);
  if (!interval) {
    return tl::unexpected(interval.error());
  }
  if (*interval) {
    o.interval = std::chrono::duration_cast<std::chrono::milliseconds>(**interval);
  }
  return o;
}

}  // namespace gridnode::drivers
