#include "pcie/aer_parse.hpp"

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::pcie {

bool AerReader::next(AerLine& out) {
  while (!rest_.empty()) {
    std::size_t nl = rest_.find('\n');
    std::string_view line = platform::trim(rest_.substr(0, nl));
    rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
    if (line.empty()) {
      continue;
    }
    std::size_t space = line.find(' ');
    out.name = line.substr(0, space);
    out.count = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    out.total = out.name.starts_with("TOTAL_ERR_");
    return true;
  }
  return false;
}

std::string_view aer_severity(std::string_view file) {
  if (file == "aer_dev_correctable") {
    return "correctable";
  }
  if (file == "aer_dev_nonfatal") {
    return "nonfatal";
  }
  if (file == "aer_dev_fatal") {
    return "fatal";
  }
  return {};
}

}  // namespace gridnode::drivers::pcie
