# Cross-compiling gridnode for Debian 12 arm64 (Kunpeng and other aarch64 hosts): the `arm64`
# preset (build-arm64/), `./gridnode.sh build arm64`, `./gridnode.sh test-arm64`.
#
# Compiler: Debian's cross GCC 12 (crossbuild-essential-arm64), the same compiler version as the
# native build, so the same warnings are errors on both. Libraries: Debian 12's own arm64
# packages unpacked into a sysroot by cmake/arm64_sysroot.sh (no multiarch on the build
# machine). Tests: the arm64 binaries run under qemu-user (qemu-user-static's
# qemu-aarch64-static, called directly: no binfmt_misc registration is needed or made), with the
# sysroot as the dynamic loader's root (-L).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT CMAKE_SYSROOT)
  if(DEFINED ENV{GRIDNODE_ARM64_SYSROOT})
    set(CMAKE_SYSROOT "$ENV{GRIDNODE_ARM64_SYSROOT}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(CMAKE_SYSROOT "$ENV{XDG_CACHE_HOME}/gridnode/arm64-sysroot")
  else()
    set(CMAKE_SYSROOT "$ENV{HOME}/.cache/gridnode/arm64-sysroot")
  endif()
endif()
if(NOT EXISTS "${CMAKE_SYSROOT}/.gridnode-packages")
  message(FATAL_ERROR "no arm64 sysroot at ${CMAKE_SYSROOT}: `./gridnode.sh build arm64` makes "
                      "it (cmake/arm64_sysroot.sh), or set GRIDNODE_ARM64_SYSROOT")
endif()
# Kept in the cache: the packaging step and the tests' emulator read it after configure.
set(GRIDNODE_ARM64_SYSROOT "${CMAKE_SYSROOT}" CACHE PATH "arm64 sysroot (cmake/arm64_sysroot.sh)")

# Headers, libraries and CMake packages from the sysroot only; programs (protoc-c, gzip) from
# the build machine.
set(CMAKE_FIND_ROOT_PATH "${CMAKE_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CMAKE_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${CMAKE_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${CMAKE_SYSROOT}/usr/share/pkgconfig")

# gridnoded links with lld (-fuse-ld=lld, its code in profiled order): a cross GCC's collect2
# looks for ld.lld only in its own program path (-B), never on PATH, and lld links any target.
find_program(GRIDNODE_CROSS_LLD NAMES ld.lld)
if(GRIDNODE_CROSS_LLD)
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/cross-ld")
  file(CREATE_LINK "${GRIDNODE_CROSS_LLD}" "${CMAKE_BINARY_DIR}/cross-ld/ld.lld" SYMBOLIC)
  set(CMAKE_EXE_LINKER_FLAGS_INIT "-B${CMAKE_BINARY_DIR}/cross-ld/")
  set(CMAKE_SHARED_LINKER_FLAGS_INIT "-B${CMAKE_BINARY_DIR}/cross-ld/")
endif()

find_program(GRIDNODE_QEMU_AARCH64 qemu-aarch64-static)
if(GRIDNODE_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${GRIDNODE_QEMU_AARCH64};-L;${CMAKE_SYSROOT}")
else()
  message(WARNING "qemu-aarch64-static not found (Debian: qemu-user-static): the arm64 tests "
                  "cannot run on this machine")
endif()
