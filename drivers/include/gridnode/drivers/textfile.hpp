#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "gridnode/drivers/driver.hpp"

namespace gridnode::drivers {

// node_exporter 1.5's textfile collector (collector/textfile.go): every `*.prom` file of
// `directory`, in the Prometheus text format, is validated as node_exporter's parser (expfmt)
// validates it and its families are reported as node_exporter writes them out (a summary as
// its quantiles, _sum and _count; a histogram as _bucket, _sum and _count), plus
//   node_textfile_mtime_seconds{file}  "Unixtime mtime of textfiles successfully read."
//                                      (whole seconds, as 1.5 writes them)
//   node_textfile_scrape_error         "1 if there was an error opening or reading a file,
//                                       0 otherwise"
// A family without HELP gets node_exporter's "Metric read from <file>[, <file>...]". The
// catalog (and the wire) has gauges and counters only: an untyped family is a gauge, and a
// histogram's or summary's series are families of their own (x_bucket, x_sum and x_count
// counters, a summary's quantiles a gauge), so only those TYPE lines differ from node_exporter's.
//
// A bad file (not the text format, a client-side timestamp, a series given twice, a family
// another file gives with a different type, a name in the agent's own gridnode_ or
// node_textfile_ namespace, larger than `max_file_bytes`) is reported: scrape_error 1, one
// warning line until it changes, no mtime and none of its samples; the other files are kept.
// A directory that cannot be read is reported the same way. Never fatal.
//
// Values are kept exactly as written (1.5e-3 is 15 × 10^-4; the family's scale is the finest
// exponent among its samples). NaN and ±Inf, which an exact value cannot hold, are dropped
// sample by sample and counted in Sweep::errors (the file stays good).
//
// The files are read again only when one of them or the directory changed (mtime, ctime, size
// or inode of each file; mtime of the directory, which a new, removed or renamed file moves):
// a steady sweep costs one stat(2) per file and allocates nothing. Rewrite files by renaming a
// complete one into place, as node_exporter's documentation asks.
struct TextfileOptions {
  // Empty: the collector is not configured and reports itself absent
  // (no_such_file_or_directory), as node_exporter's default, which reads nothing.
  std::string directory;
  std::size_t max_file_bytes = std::size_t{1} << 20;
};

std::unique_ptr<Driver> make_textfile_driver(TextfileOptions options);

}  // namespace gridnode::drivers
