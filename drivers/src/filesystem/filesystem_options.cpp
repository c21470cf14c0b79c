#include "filesystem/filesystem_options.hpp"

#include <regex.h>

#include <algorithm>
#include <array>

namespace gridnode::drivers::filesystem {
namespace {

// The driver compiles the same way (regcomp, extended); refused here, where the key is known.
platform::Result<void> check_regex(const OptionReader& read, std::string_view key,
                                   const std::string& pattern) {
  regex_t re;
  int rc = regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    std::array<char, 256> msg{};
    regerror(rc, &re, msg.data(), msg.size());
    return tl::unexpected(read.bad(key, std::string("not a regular expression: ") + msg.data()));
  }
  regfree(&re);
  return {};
}

}  // namespace

platform::Result<FilesystemOptions> options(const DriverContext& context,
                                            const OptionSection& section) {
  const OptionReader read(section);
  if (auto ok = read.only({"mount_points_exclude", "fs_types_exclude", "mount_timeout"}); !ok) {
    return tl::unexpected(ok.error());
  }
  FilesystemOptions o;
  o.roots = context.roots;
  for (auto [key, field] : {std::pair{"mount_points_exclude", &o.mount_points_exclude},
                            std::pair{"fs_types_exclude", &o.fs_types_exclude}}) {
    auto v = read.string(key, true);
    if (!v) {
      return tl::unexpected(v.error());
    }
    if (*v) {
      *field = **v;
    }
    if (auto ok = check_regex(read, key, *field); !ok) {
      return tl::unexpected(ok.error());
    }
  }
  auto timeout = read.seconds("mount_timeout", 0.01, 60);
  if (!timeout) {
    return tl::unexpected(timeout.error());
  }
  // A sweep may wait out the deadline of a mount that has just hung, and of the next one on a
  // fresh worker: with at most a quarter of the sweep's, two of them still leave it half.
  o.mount_timeout = std::min<std::chrono::nanoseconds>(timeout->value_or(o.mount_timeout),
                                                       context.sweep_timeout / 4);
  return o;
}

platform::Result<std::unique_ptr<Driver>> make(const DriverContext& context,
                                               const OptionSection& section) {
  auto o = options(context, section);
  if (!o) {
    return tl::unexpected(o.error());
  }
  return make_filesystem_driver(std::move(*o));
}

platform::Result<void> check(const OptionSection& section) {
  auto o = options(DriverContext{}, section);
  if (!o) {
    return tl::unexpected(o.error());
  }
  return {};
}

}  // namespace gridnode::drivers::filesystem
