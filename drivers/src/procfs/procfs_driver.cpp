#include "gridnode/drivers/procfs.hpp"

namespace gridnode::drivers {
namespace {

// Placeholder until the procfs driver lands: reports its source as absent.
class PlaceholderDriver final : public Driver {
 public:
  std::string_view name() const override { return "procfs"; }
  platform::Result<void> sweep(Sweep&) override {
    return platform::fail(std::errc::no_such_file_or_directory, "procfs: not implemented yet");
  }
};

}  // namespace

std::unique_ptr<Driver> make_procfs_driver(ProcfsOptions) { return std::make_unique<PlaceholderDriver>(); }

}  // namespace gridnode::drivers
