#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/drivers/ipmi.hpp"
#include "gridnode/platform/result.hpp"
#include "bmc.hpp"

namespace gridnode::drivers::ipmi {

// FreeIPMI's workaround flag bits for `names` (the tools' -W names) on `interface`; an unknown
// name, or one that belongs to another interface, is invalid_argument naming it. The bits are
// the same in libipmimonitoring and libfreeipmi.
[[nodiscard]] platform::Result<unsigned int> parse_workaround_flags(
    IpmiInterface interface, const std::vector<std::string>& names);

// "user", "operator", "admin" as IPMI's privilege level (2, 3, 4); anything else is
// invalid_argument.
[[nodiscard]] platform::Result<std::uint8_t> parse_privilege(std::string_view name);

// The BMC of `options` through libipmimonitoring (sensors) and libfreeipmi (SEL, chassis,
// DCMI). Options are checked here (flags, privilege); `sdr_cache_dir` must exist, mode 0700.
[[nodiscard]] platform::Result<std::shared_ptr<Bmc>> make_freeipmi_bmc(
    const IpmiOptions& options, const std::string& sdr_cache_dir);

}  // namespace gridnode::drivers::ipmi
