#include "accelerator/dl_library.hpp"

#include <dlfcn.h>

namespace gridnode::drivers::accelerators {

platform::Result<std::unique_ptr<DlLibrary>> DlLibrary::open(const std::string& path) {
  ::dlerror();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return platform::fail(std::errc::no_such_file_or_directory,
                          why != nullptr ? std::string(why) : path + ": cannot be loaded");
  }
  return std::unique_ptr<DlLibrary>(new DlLibrary(handle, path));
}

DlLibrary::~DlLibrary() {
  if (handle_ != nullptr) {
    ::dlclose(handle_);
  }
}

void* DlLibrary::symbol_address(const char* symbol) const { return ::dlsym(handle_, symbol); }

platform::Result<void> DlLibrary::require(
    std::initializer_list<std::pair<const char*, bool>> required, std::string_view hint) const {
  for (auto [name, ok] : required) {
    if (!ok) {
      return platform::fail(std::errc::function_not_supported,
                            path_ + ": no " + name + " (" + std::string(hint) + ")");
    }
  }
  return {};
}

}  // namespace gridnode::drivers::accelerators
