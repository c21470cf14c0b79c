#pragma once

#include "gridnode/drivers/registry.hpp"
#include "gridnode/drivers/textfile.hpp"

namespace gridnode::drivers::textfile {

// [textfile] of agent.toml (node_exporter's --collector.textfile.directory sets the same key):
//   directory = "/var/lib/gridnode/textfile"   no default: without it the collector is absent
//   max_file_bytes = 1048576                    a larger *.prom file is refused (scrape_error)
[[nodiscard]] platform::Result<TextfileOptions> options(const DriverContext& context,
                                                        const OptionSection& section);

// The registry entry's two halves.
[[nodiscard]] platform::Result<std::unique_ptr<Driver>> make(const DriverContext& context,
                                                             const OptionSection& section);
[[nodiscard]] platform::Result<void> check(const OptionSection& section);

}  // namespace gridnode::drivers::textfile
