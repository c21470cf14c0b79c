#pragma once

#include <string_view>

namespace gridnode::agent {

// gridnode_driver_up{driver}: the exposition and the reports both carry it; its name and help
// text are spelled here once.
inline constexpr std::string_view kDriverUpMetric = "gridnode_driver_up";
inline constexpr std::string_view kDriverUpHelp =
    "Whether the driver's last sweep succeeded (1) or not (0).";

}  // namespace gridnode::agent
