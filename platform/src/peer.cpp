#include "gridnode/platform/peer.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace gridnode::platform {

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
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return pw.pw_name;
  }
  return std::to_string(uid);
}

}  // namespace gridnode::platform
