#include "procfs/table.hpp"

#include <algorithm>
#include <utility>

namespace gridnode::drivers::procfs {
namespace {

// node_exporter reads /proc/stat lines of up to 1 MiB (the intr line of a big host is long).
constexpr std::size_t kMaxTableBytes = 4u << 20;
constexpr std::size_t kFirstBufferBytes = 16u << 10;

}  // namespace

std::uint32_t add_family(Catalog& c, const FamilySpec& f) {
  return c.add_family(
      Family{std::string(f.name), std::string(f.help), f.type, f.scale, std::string(f.unit)});
}

TableFile::TableFile(std::string path, bool records) : path_(std::move(path)), records_(records) {
  if (!records_) {
    file_ = platform::KernelFile(path_);
    buf_.resize(kFirstBufferBytes);
  }
}

void TableFile::read() {
  platform::Result<std::string_view> got = records_ ? read_records() : read_single();
  if (got) {
    state_ = State::ok;
    text_ = *got;
    return;
  }
  text_ = {};
  error_ = std::move(got.error());
  state_ = error_.code == std::errc::no_such_file_or_directory ? State::absent : State::failed;
}

platform::Result<std::string_view> TableFile::read_records() {
  auto r = platform::read_file(path_, str_, kMaxTableBytes);
  if (!r) {
    return tl::unexpected(std::move(r.error()));
  }
  return std::string_view(str_);
}

platform::Result<std::string_view> TableFile::read_single() {
  for (;;) {
    auto r = file_.read(buf_);
    if (r || r.error().code != std::errc::result_out_of_range || buf_.size() >= kMaxTableBytes) {
      return r;
    }
    buf_.resize(std::min(buf_.size() * 2, kMaxTableBytes));
  }
}

void log_skipped(const std::string& path, std::string_view row, std::string_view field,
                 std::string_view err) {
  platform::LogLine line("reading skipped");
  line.kv("path", path);
  if (!row.empty()) {
    line.kv("row", row);
  }
  if (!field.empty()) {
    line.kv("field", field);
  }
  platform::log(platform::Level::debug, kComponent, line.kv("err", err));
}

void log_recovered(platform::Complaint& c, const std::string& path, std::string_view row) {
  if (c.release()) {
    platform::LogLine line("reading recovered");
    line.kv("path", path);
    if (!row.empty()) {
      line.kv("row", row);
    }
    platform::log(platform::Level::debug, kComponent, line);
  }
}

void Emitter::value_skipped(Sweep& out, const std::string& path, std::string_view row,
                            std::uint32_t series, const platform::Error& err) {
  ++out.errors;
  if (series_complaints_[series].complain()) {
    log_skipped(path, row, catalog_->family_of(series).name, err.message());
  }
}

void Emitter::push_value(Sweep& out, const std::string& path, std::string_view row,
                         std::uint32_t series, std::string_view text) {
  auto v = platform::parse_uint64(text);
  if (!v) {
    value_skipped(out, path, row, series, v.error());
    return;
  }
  recovered(path, row, series);
  out.readings.push_back(Reading{series, Value::of_unsigned(*v)});
}

void Emitter::push_hundredths(Sweep& out, const std::string& path, std::uint32_t series,
                              std::string_view text) {
  auto v = procfs::parse_hundredths(text);
  if (!v) {
    value_skipped(out, path, "", series, v.error());
    return;
  }
  recovered(path, "", series);
  out.readings.push_back(Reading{series, Value::of_unsigned(*v)});
}

}  // namespace gridnode::drivers::procfs
