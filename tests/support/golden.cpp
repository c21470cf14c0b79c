#include "golden.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace gridnode::testing {

std::string sweep_text(const drivers::Sweep& sweep) {
  std::vector<std::string> lines;
  for (const auto& r : sweep.readings) {
    const auto& series = sweep.catalog->series.at(r.series);
    const auto& family = sweep.catalog->families.at(series.family);
    std::string line = family.name;
    if (!series.labels.empty()) {
      line += '{';
      bool first = true;
      for (const auto& [k, v] : series.labels) {
        if (!first) {
          line += ',';
        }
        first = false;
        line += k + "=\"" + v + "\"";
      }
      line += '}';
    }
    line += ' ' + drivers::format_value(r.value, family.scale);
    lines.push_back(std::move(line));
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) {
    out += l + '\n';
  }
  return out;
}

drivers::Sweep sweep_ok(drivers::Driver& driver) {
  drivers::Sweep out;
  auto result = driver.sweep(out);
  EXPECT_TRUE(result) << (result ? "" : result.error().message());
  return out;
}

bool has_line(const std::string& text, std::string_view line) {
  return text.find(std::string(line) + "\n") != std::string::npos;
}

void expect_golden(const std::string& actual, const std::string& path) {
  const char* update = std::getenv("GRIDNODE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "golden file missing: " << path << " (GRIDNODE_UPDATE_GOLDEN=1 writes it)";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(actual, ss.str()) << "differs from " << path;
}

}  // namespace gridnode::testing
