#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::accelerators {

// A vendor's management library (libnvidia-ml.so.1, libdcmi.so, …), opened with
// dlopen(RTLD_NOW | RTLD_LOCAL) and closed (dlclose) when the last owner lets go. Each vendor's
// Library holds one and fills its table of entry points with find(); worker threads hold a
// reference to that Library, so a call hung inside the library keeps its code mapped.
class DlLibrary {
 public:
  // no_such_file_or_directory when dlopen fails (the vendor's driver is not installed: dlerror()
  // in the context).
  [[nodiscard]] static platform::Result<std::unique_ptr<DlLibrary>> open(const std::string& path);
  ~DlLibrary();
  DlLibrary(const DlLibrary&) = delete;
  DlLibrary& operator=(const DlLibrary&) = delete;

  // Sets `out` to the entry point called `symbol`, or null when the library lacks it.
  template <class Fn>
  void find(const char* symbol, Fn& out) const {
    // POSIX guarantees that a data pointer from dlsym converts to a function pointer.
    out = reinterpret_cast<Fn>(symbol_address(symbol));
  }
  // The newer entry point where the library has it, else the older one (same signature).
  template <class Fn>
  void find_either(const char* newer, const char* older, Fn& out) const {
    find(newer, out);
    if (out == nullptr) {
      find(older, out);
    }
  }
  // function_not_supported naming the first missing one of `required` (symbol name, whether
  // found), with `hint` saying which library version lacks it: a library too old to speak to.
  [[nodiscard]] platform::Result<void> require(
      std::initializer_list<std::pair<const char*, bool>> required, std::string_view hint) const;

  const std::string& path() const { return path_; }

 private:
  DlLibrary(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  void* symbol_address(const char* symbol) const;
  void* handle_;
  std::string path_;
};

}  // namespace gridnode::drivers::accelerators
