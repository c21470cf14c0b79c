#pragma once

#include <string>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::testing {

// A sweep as sorted Prometheus sample lines, `name{k="v",...} value`, values exact
// (format_value). Labels in the catalog's (sorted) order. Used to compare with golden files.
std::string sweep_text(const drivers::Sweep& sweep);

// Compares `actual` with the golden file at `path` (GTest failure with a diff-like message).
// With GRIDNODE_UPDATE_GOLDEN=1 in the environment, rewrites the file instead.
void expect_golden(const std::string& actual, const std::string& path);

}  // namespace gridnode::testing
