#pragma once

#include <cstring>
#include <string>

namespace gridnode::drivers::accelerators {

// A C string from a fixed buffer a vendor's library filled (NVML's names, DCMI's chip info), up
// to its first NUL or the buffer's end: a library that fills it to the brim without a NUL does
// not make us read past it.
inline std::string from_c_buffer(const char* buf, std::size_t size) {
  return std::string(buf, ::strnlen(buf, size));
}
inline std::string from_c_buffer(const unsigned char* buf, std::size_t size) {
  return from_c_buffer(reinterpret_cast<const char*>(buf), size);
}

}  // namespace gridnode::drivers::accelerators
