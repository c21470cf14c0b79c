#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/result.hpp"
#include "temp_dir.hpp"

// What the tests of the dlopen'd accelerator drivers (nvml, ascend, cndev) each need around
// their fake library: a fixture's text, one sweep, one sample's value.
namespace gridnode::testing {

// tests/fixtures/<path> as text ("nvml/two_gpus.scenario").
inline std::string fixture_text(const std::string& path) {
  std::ifstream in(fixture_path(path));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The value of the first sample line of `name` in `text` whose labels hold `label`="<index>".
inline std::optional<std::string> sample_value(const std::string& text, const std::string& name,
                                               const std::string& label, int index) {
  std::string tag = label + "=\"" + std::to_string(index) + "\"";
  std::size_t pos = 0;
  while ((pos = text.find(name + "{", pos)) != std::string::npos) {
    if (pos != 0 && text[pos - 1] != '\n') {
      ++pos;
      continue;
    }
    auto end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    pos = end;
    if (line.find(tag) != std::string::npos) {
      return line.substr(line.rfind(' ') + 1);
    }
  }
  return std::nullopt;
}

// One sweep of `d`: its result into `result`, else expected to succeed.
inline drivers::Sweep sweep_once(drivers::Driver& d, platform::Result<void>* result = nullptr) {
  drivers::Sweep out;
  auto r = d.sweep(out);
  if (result != nullptr) {
    *result = r;
  } else {
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
  }
  return out;
}

}  // namespace gridnode::testing
