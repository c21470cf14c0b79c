#include "temp_dir.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace gridnode::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Make unreadable test files removable again.
  for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_symlink()) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  fs::remove_all(path_, ec);
}

std::string TempDir::operator/(std::string_view rel) const {
  return path_ + "/" + std::string(rel);
}

void FakeTree::write(std::string_view rel, std::string_view content, unsigned mode) {
  fs::path p = dir_ / rel;
  fs::create_directories(p.parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  ::chmod(p.c_str(), mode);
}

void FakeTree::mkdir(std::string_view rel) { fs::create_directories(dir_ / rel); }

void FakeTree::symlink(std::string_view target, std::string_view rel) {
  fs::path p = dir_ / rel;
  fs::create_directories(p.parent_path());
  fs::create_symlink(std::string(target), p);
}

void FakeTree::remove(std::string_view rel) { fs::remove_all(dir_ / rel); }

std::string fixture_path(std::string_view rel) {
  return std::string(GRIDNODE_FIXTURES_DIR) + "/" + std::string(rel);
}

}  // namespace gridnode::testing
