#pragma once

#include "gridnode/drivers/filesystem.hpp"
#include "gridnode/drivers/registry.hpp"

namespace gridnode::drivers::filesystem {

// [filesystem] of agent.toml (node_exporter's --collector.filesystem.* flags, which set the
// same keys):
//   mount_points_exclude = "^/(dev|proc|…)($|/)"   POSIX extended regexes, searched unanchored;
//   fs_types_exclude = "^(autofs|…|tracefs)$"       node_exporter 1.5's defaults when absent
//   mount_timeout = 1                               seconds one statfs may take before its mount
//                                                   is stalled; at most a quarter of the sweep's
// A regex that does not compile is an error naming its key.
[[nodiscard]] platform::Result<FilesystemOptions> options(const DriverContext& context,
                                                          const OptionSection& section);

// The registry entry's two halves.
[[nodiscard]] platform::Result<std::unique_ptr<Driver>> make(const DriverContext& context,
                                                             const OptionSection& section);
[[nodiscard]] platform::Result<void> check(const OptionSection& section);

}  // namespace gridnode::drivers::filesystem
