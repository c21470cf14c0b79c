#pragma once

#include <memory>
#include <string>
#include <utility>

#include "accelerator/dl_library.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::accelerators {

// A vendor's library (libnvidia-ml.so.1, libdcmi.so, libcndev.so) and its table of entry points
// `Api`, through DlLibrary: shared with the worker threads, so that a call hung inside the
// library keeps its code mapped. Closed when the last owner lets go.
//
// open() fills the table with the vendor's `find_entry_points(const DlLibrary&, Api&)` (found
// next to its Api), which finds every entry point and answers DlLibrary::require()'s verdict on
// the ones without which there is no library to speak of.
template <class Api>
class VendorLibrary {
 public:
  // no_such_file_or_directory when dlopen fails (the vendor's driver is not installed: dlerror()
  // in the context); function_not_supported when a required entry point is missing.
  [[nodiscard]] static platform::Result<std::shared_ptr<const VendorLibrary>> open(
      const std::string& path) {
    auto dl = DlLibrary::open(path);
    if (!dl) {
      return tl::unexpected(dl.error());
    }
    std::shared_ptr<VendorLibrary> lib(new VendorLibrary(std::move(*dl)));
    if (auto ok = find_entry_points(static_cast<const DlLibrary&>(*lib->dl_), lib->api_); !ok) {
      return tl::unexpected(ok.error());
    }
    return std::shared_ptr<const VendorLibrary>(std::move(lib));
  }
  ~VendorLibrary() = default;
  VendorLibrary(const VendorLibrary&) = delete;
  VendorLibrary& operator=(const VendorLibrary&) = delete;

  const Api& api() const { return api_; }
  const std::string& path() const { return dl_->path(); }

 private:
  explicit VendorLibrary(std::unique_ptr<DlLibrary> dl) : dl_(std::move(dl)) {}
  std::unique_ptr<DlLibrary> dl_;
  Api api_;
};

}  // namespace gridnode::drivers::accelerators
