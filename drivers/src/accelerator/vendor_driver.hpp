#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "accelerator/device_set.hpp"
#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/result.hpp"
#include "rediscovery.hpp"

namespace gridnode::drivers::accelerators {

// The sweep every dlopen'd accelerator driver makes the same way: until the library is up,
// try (open the library and its control worker, then discover with init) at most every
// Rediscovery::kEvery sweeps, answering the last failure in between; once up, poll; no device
// is absent ("NVML found no GPU"); else read the devices. A vendor's driver derives from it
// with its Library (open(path), path(), api()) and fills in the hooks.
template <class Library>
class VendorDriver : public Driver {
 public:
  platform::Result<void> sweep(Sweep& out) final {
    if (!initialized_) {
      if (!retry_.due()) {
        return tl::unexpected(last_error_);
      }
      retry_.done();  // whatever happens, the next attempt is kEvery sweeps away
      auto ready = start(out);
      if (!ready) {
        last_error_ = ready.error();
        return ready;
      }
    } else if (auto polled = poll(out); !polled) {
      return polled;
    }
    if (no_device()) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            std::string(library_) + " found no " + std::string(device_));
    }
    read_devices(out);
    return {};
  }

 protected:
  // `library`: what the messages call it ("NVML"); `device`: its devices ("GPU").
  VendorDriver(std::string_view library, std::string_view device)
      : library_(library), device_(device) {}

  // Opens the library (once), then initialises it and discovers the devices.
  platform::Result<void> start(Sweep& out) {
    if (!lib_) {
      auto lib = Library::open(library_path());
      if (!lib) {
        return tl::unexpected(lib.error());
      }
      lib_ = std::move(*lib);
      control_ = std::make_unique<ControlWorker>(std::string(library_));
    }
    return discover(out, true);
  }

  std::shared_ptr<const Library> lib_;
  std::unique_ptr<ControlWorker> control_;
  bool initialized_ = false;  // set by discover() once the library's init succeeded
  Rediscovery retry_;
  platform::Error last_error_;

 private:
  // The path start() opens (the options' library).
  virtual const std::string& library_path() const = 0;
  // Initialises the library when `need_init`, then finds the devices.
  virtual platform::Result<void> discover(Sweep& out, bool need_init) = 0;
  // A steady sweep's control call (events, rediscovery when due).
  virtual platform::Result<void> poll(Sweep& out) = 0;
  virtual bool no_device() const = 0;
  virtual void read_devices(Sweep& out) = 0;

  std::string_view library_;
  std::string_view device_;
};

}  // namespace gridnode::drivers::accelerators
