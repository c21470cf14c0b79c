#include "gridnode/drivers/timex.hpp"

#include <cerrno>
#include <memory>
#include <string>

#include "timex/timex_convert.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "timex";

class TimexDriver final : public Driver {
 public:
  explicit TimexDriver(TimexOptions options) : adjtimex_(options.adjtimex) {
    Catalog catalog;
    for (const Family& f : timex::families()) {
      series_[&f - timex::families().data()] = catalog.add_series(catalog.add_family(f), {});
    }
    catalog_ = std::make_shared<const Catalog>(std::move(catalog));
  }

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    struct ::timex tx {};
    tx.modes = 0;  // read only: nothing is set, no capability is needed
    int state = adjtimex_(&tx);
    if (state == -1) {
      int err = errno;
      if (err == EPERM) {
        // Not a fault of this host's clock: the service's own filter forbids the call (the
        // packaged unit's ProtectClock=yes, which no SystemCallFilter= line lifts). Reported as
        // absent, with the reason, so that a packaged agent neither counts an error each sweep
        // nor alerts on a driver it was deliberately denied.
        return platform::fail(std::errc::no_such_file_or_directory,
                              "adjtimex(2) refused by a system call filter, e.g. the unit's "
                              "ProtectClock=yes, also for this read-only call (agent.toml(5), "
                              "TIMEX, gives the drop-in that allows it)");
      }
      return platform::fail_errno(err, "adjtimex(2)");
    }
    auto values = timex::values(state, tx);
    out.catalog = catalog_;
    out.readings.reserve(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      out.readings.push_back(Reading{series_[i], values[i]});
    }
    return {};
  }

 private:
  int (*adjtimex_)(struct ::timex*);
  std::array<std::uint32_t, timex::kFamilies> series_{};
  std::shared_ptr<const Catalog> catalog_;
};

}  // namespace

std::unique_ptr<Driver> make_timex_driver(TimexOptions options) {
  return std::make_unique<TimexDriver>(options);
}

}  // namespace gridnode::drivers
