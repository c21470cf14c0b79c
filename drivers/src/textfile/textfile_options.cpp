#include "textfile/textfile_options.hpp"

namespace gridnode::drivers::textfile {

platform::Result<TextfileOptions> options(const DriverContext& /*context*/,
                                          const OptionSection& section) {
  const OptionReader read(section);
  if (auto ok = read.only({"directory", "max_file_bytes"}); !ok) {
    return tl::unexpected(ok.error());
  }
  TextfileOptions o;
  auto dir = read.string("directory");
  if (!dir) {
    return tl::unexpected(dir.error());
  }
  if (*dir) {
    if (!(*dir)->starts_with('/')) {
      return tl::unexpected(read.bad("directory", "must be an absolute path"));
    }
    o.directory = **dir;
  }
  auto max = read.integer("max_file_bytes", 1024, std::int64_t{1} << 30);
  if (!max) {
    return tl::unexpected(max.error());
  }
  if (*max) {
    o.max_file_bytes = static_cast<std::size_t>(**max);
  }
  return o;
}

platform::Result<std::unique_ptr<Driver>> make(const DriverContext& context,
                                               const OptionSection& section) {
  auto o = options(context, section);
  if (!o) {
    return tl::unexpected(o.error());
  }
  return make_textfile_driver(std::move(*o));
}

platform::Result<void> check(const OptionSection& section) {
  auto o = options(DriverContext{}, section);
  if (!o) {
    return tl::unexpected(o.error());
  }
  return {};
}

}  // namespace gridnode::drivers::textfile
