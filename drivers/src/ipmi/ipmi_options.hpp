#pragma once

#include "gridnode/drivers/ipmi.hpp"
#include "gridnode/drivers/registry.hpp"

namespace gridnode::drivers {

// [ipmi] of agent.toml (packaging/agent.toml and agent.toml(5) document each key):
//   interface = "inband"             "inband" (the kernel's /dev/ipmi0), "lan" (IPMI 1.5),
//                                    "lanplus" (IPMI 2.0, RMCP+)
//   device = "/dev/ipmi0"            inband: the device; without it the driver is absent
//   host = "10.0.0.5"  port = 623    lan, lanplus: the BMC
//   username = "monitor"             lan, lanplus ("" or absent: the anonymous user)
//   password_file = "/etc/gridnode/bmc.pass"   mode 0600 (refused when group or others may
//                                    read it); one trailing newline is not part of it
//   privilege = "operator"           "user", "operator", "admin"
//   cipher_suite = 3                 lanplus: RMCP+ cipher suite id (0..17)
//   workaround_flags = ["opensesspriv"]        FreeIPMI's -W names
//   timeout = 5                      seconds one IPMI session may take (0.1 .. 60)
//   interval = 10                    seconds between two readings of the BMC (1 .. 3600)
// The state directory (SEL position, SDR cache) is the agent's.
[[nodiscard]] platform::Result<IpmiOptions> ipmi_options(const DriverContext& context,
                                                         const OptionSection& section);

}  // namespace gridnode::drivers
