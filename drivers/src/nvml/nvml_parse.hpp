#pragma once
// Included by path from tests (tests/drivers/nvml_test.cpp): relative includes only.

#include "../accelerator/c_string.hpp"
#include "../accelerator/process_owner.hpp"

// The nvml driver's parsers are the accelerators' shared ones (drivers/src/accelerator/): the
// owner of a GPU process comes from procfs the same way for every vendor.
namespace gridnode::drivers::nvml {

using accelerators::from_c_buffer;
using accelerators::parse_cgroup_path;
using accelerators::parse_status_uid;

}  // namespace gridnode::drivers::nvml
