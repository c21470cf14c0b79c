#pragma once

#include <cstdint>
#include <string_view>

namespace gridnode::drivers::pcie {

// One line of an aer_dev_{correctable,nonfatal,fatal} file: "NAME COUNT" (drivers/pci/pcie/
// aer.c, aer_stats_dev_attr), e.g. "RxErr 0", "dev_cor_errs_bit[4] 2", "TOTAL_ERR_COR 3".
struct AerLine {
  std::string_view name;
  std::string_view count;  // the text after the name, not yet parsed
  bool total = false;      // the file's TOTAL_ERR_* line
};

// Walks the file's lines (a blank one, e.g. a last "\n", is skipped). A line without a space
// gives a name and an empty count, which does not parse.
class AerReader {
 public:
  explicit AerReader(std::string_view text) : rest_(text) {}
  bool next(AerLine& out);

 private:
  std::string_view rest_;
};

// "correctable" for aer_dev_correctable, and so on; empty for other names.
std::string_view aer_severity(std::string_view file);

}  // namespace gridnode::drivers::pcie
