#include "filesystem/mounts.hpp"

#include <array>

namespace gridnode::drivers::filesystem {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

// strings.Replace(s, "\\040", " ", -1), then the same for \011.
std::string decode(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && field.substr(i, 4) == "\\040") {
      out.push_back(' ');
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  std::string tab;
  tab.reserve(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\\' && std::string_view(out).substr(i, 4) == "\\011") {
      tab.push_back('\t');
      i += 3;
    } else {
      tab.push_back(out[i]);
    }
  }
  return tab;
}

std::string strip_rootfs(std::string path, std::string_view rootfs) {
  if (rootfs == "/") {
    return path;
  }
  if (std::string_view(path).substr(0, rootfs.size()) == rootfs) {
    path.erase(0, rootfs.size());
  }
  return path.empty() ? std::string("/") : path;
}

bool has_ro(std::string_view options) {
  while (true) {
    auto comma = options.find(',');
    if (options.substr(0, comma) == "ro") {
      return true;
    }
    if (comma == std::string_view::npos) {
      return false;
    }
    options.remove_prefix(comma + 1);
  }
}

}  // namespace

Mounts parse_mounts(std::string_view text, std::string_view rootfs) {
  Mounts out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // strings.Fields: runs of white space separate fields.
    std::array<std::string_view, 4> fields;
    std::size_t n = 0;
    std::size_t i = 0;
    while (i < line.size() && n < fields.size()) {
      while (i < line.size() && is_space(line[i])) {
        ++i;
      }
      std::size_t start = i;
      while (i < line.size() && !is_space(line[i])) {
        ++i;
      }
      if (i > start) {
        fields[n++] = line.substr(start, i - start);
      }
    }
    if (n < fields.size()) {  // an empty line too; the final newline ends the last line
      ++out.malformed;
      continue;
    }
    out.mounts.push_back(Mount{std::string(fields[0]), strip_rootfs(decode(fields[1]), rootfs),
                               std::string(fields[2]), has_ro(fields[3])});
  }
  return out;
}

}  // namespace gridnode::drivers::filesystem
