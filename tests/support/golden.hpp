#pragma once

#include <string>
#include <string_view>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::testing {

// A sweep as sorted Prometheus sample lines, `name{k="v",...} value`, values exact
// (format_value). Labels in the catalog's (sorted) order. Used to compare with golden files.
std::string sweep_text(const drivers::Sweep& sweep);

// One sweep into a fresh Sweep; a failed sweep is a test failure (with its message).
drivers::Sweep sweep_ok(drivers::Driver& driver);

// Whether `text` holds `line` followed by a newline (a sample line of sweep_text()).
bool has_line(const std::string& text, std::string_view line);

// Compares `actual` with the golden file at `path` (GTest failure with a diff-like message).
// With GRIDNODE_UPDATE_GOLDEN=1 in the environment, rewrites the file instead.
void expect_golden(const std::string& actual, const std::string& path);

}  // namespace gridnode::testing
