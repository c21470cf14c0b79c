#include "gridnode/platform/peer.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <type_traits>
#include <cerrno>
#include <charconv>

namespace gridnode::platform {
namespace {

// Looks `key` up in a passwd- or group-format file with libc's fgetpwent_r / fgetgrent_r.
template <class Entry, class Key>
auto find_in_file(const char* path, const Key& key)
    -> std::optional<std::conditional_t<std::is_same_v<Entry, struct group>, gid_t, std::string>> {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path, "re"), &std::fclose);
  if (!f) {
    return std::nullopt;
  }
  Entry entry{};
  Entry* found = nullptr;
  char buf[4096];
  for (;;) {
    int rc;
    if constexpr (std::is_same_v<Entry, struct group>) {
      rc = ::fgetgrent_r(f.get(), &entry, buf, sizeof buf, &found);
    } else {
      rc = ::fgetpwent_r(f.get(), &entry, buf, sizeof buf, &found);
    }
    if (rc != 0 || found == nullptr) {
      return std::nullopt;  // end of file, or a line too long to matter
    }
    if constexpr (std::is_same_v<Entry, struct group>) {
      if (key == found->gr_name) {
        return found->gr_gid;
      }
    } else {
      if (key == found->pw_uid) {
        return std::string(found->pw_name);
      }
    }
  }
}

}  // namespace

bool PeerCredentials::in_group(gid_t g) const {
  return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
}

Result<PeerCredentials> peer_credentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail_errno(errno, "getsockopt(SO_PEERCRED)");
  }
  PeerCredentials out;
  out.pid = cred.pid;
  out.uid = cred.uid;
  out.gid = cred.gid;
  // SO_PEERGROUPS (Linux 4.13) gives the supplementary groups the peer had at connect(2).
  // ERANGE tells us how much room it needs.
  std::vector<gid_t> groups(16);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      out.groups = std::move(groups);
      return out;
    }
    if (errno != ERANGE) {
      return fail_errno(errno, "getsockopt(SO_PEERGROUPS)");
    }
    groups.resize(glen / sizeof(gid_t) + 1);
  }
  return fail(std::errc::value_too_large, "getsockopt(SO_PEERGROUPS)");
}

Result<gid_t> resolve_group(const std::string& name_or_gid) {
  if (name_or_gid.empty()) {
    return fail(std::errc::invalid_argument, "empty group");
  }
  unsigned long num = 0;
  auto [end, ec] = std::from_chars(name_or_gid.data(), name_or_gid.data() + name_or_gid.size(), num);
  if (ec == std::errc() && end == name_or_gid.data() + name_or_gid.size()) {
    return static_cast<gid_t>(num);
  }
  // /etc/group first, parsed by libc without NSS: going through getgrnam_r loads NSS modules
  // (libnss_systemd and its dependencies) that would stay resident in the daemon for good.
  // Groups that only a directory service knows fall through to getgrnam_r.
  if (auto gid = find_in_file<struct group>("/etc/group", name_or_gid)) {
    return *gid;
  }
  struct group grp {};
  struct group* found = nullptr;
  std::vector<char> buf(4096);
  int rc;
  while ((rc = ::getgrnam_r(name_or_gid.c_str(), &grp, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1u << 20)) {
    buf.resize(buf.size() * 2);
  }
  if (rc != 0) {
    return fail_errno(rc, "group " + name_or_gid);
  }
  if (found == nullptr) {
    return fail(std::errc::invalid_argument, "group " + name_or_gid + " does not exist");
  }
  return grp.gr_gid;
}

std::string user_name(uid_t uid) {
  if (auto name = find_in_file<struct passwd>("/etc/passwd", uid)) {
    return *name;
  }
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return pw.pw_name;
  }
  return std::to_string(uid);
}

}  // namespace gridnode::platform
