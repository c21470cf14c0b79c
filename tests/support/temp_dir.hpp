#pragma once

#include <string>
#include <string_view>

namespace gridnode::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at destruction.
// Its path is short, so Unix socket paths under it stay well inside 108 bytes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const;

 private:
  std::string path_;
};

// A sysfs/procfs tree built file by file in a TempDir, for the odd cases that do not deserve a
// fixture tree of their own (node_exporter's buildFakeSysfs). Paths are relative to the root.
class FakeTree {
 public:
  const std::string& root() const { return dir_.path(); }
  // Creates parent directories as needed; `mode` 0 makes the file unreadable.
  void write(std::string_view rel, std::string_view content, unsigned mode = 0644);
  void mkdir(std::string_view rel);
  void symlink(std::string_view target, std::string_view rel);
  void remove(std::string_view rel);  // file, link or whole directory

 private:
  TempDir dir_;
};

// The path of a fixture tree in the source (tests/fixtures/<rel>): read-only, never write there.
std::string fixture_path(std::string_view rel);

}  // namespace gridnode::testing
