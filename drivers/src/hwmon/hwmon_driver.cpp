#include "gridnode/drivers/hwmon.hpp"

namespace gridnode::drivers {
namespace {

// Placeholder until the hwmon driver lands: reports its source as absent.
class PlaceholderDriver final : public Driver {
 public:
  std::string_view name() const override { return "hwmon"; }
  platform::Result<void> sweep(Sweep&) override {
    return platform::fail(std::errc::no_such_file_or_directory, "hwmon: not implemented yet");
  }
};

}  // namespace

std::unique_ptr<Driver> make_hwmon_driver(HwmonOptions) { return std::make_unique<PlaceholderDriver>(); }

}  // namespace gridnode::drivers
