#include "gridnode/drivers/thermal.hpp"

namespace gridnode::drivers {
namespace {

// Placeholder until the thermal driver lands: reports its source as absent.
class PlaceholderDriver final : public Driver {
 public:
  std::string_view name() const override { return "thermal"; }
  platform::Result<void> sweep(Sweep&) override {
    return platform::fail(std::errc::no_such_file_or_directory, "thermal: not implemented yet");
  }
};

}  // namespace

std::unique_ptr<Driver> make_thermal_driver(ThermalOptions) { return std::make_unique<PlaceholderDriver>(); }

}  // namespace gridnode::drivers
