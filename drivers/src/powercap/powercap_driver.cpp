#include "gridnode/drivers/powercap.hpp"

namespace gridnode::drivers {
namespace {

// Placeholder until the powercap driver lands: reports its source as absent.
class PlaceholderDriver final : public Driver {
 public:
  std::string_view name() const override { return "powercap"; }
  platform::Result<void> sweep(Sweep&) override {
    return platform::fail(std::errc::no_such_file_or_directory, "powercap: not implemented yet");
  }
};

}  // namespace

std::unique_ptr<Driver> make_powercap_driver(PowercapOptions) { return std::make_unique<PlaceholderDriver>(); }

}  // namespace gridnode::drivers
