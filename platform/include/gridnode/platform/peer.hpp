#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "gridnode/platform/result.hpp"

namespace gridnode::platform {

// Who is at the other end of a connected Unix socket, as the kernel recorded it at connect(2)
// time (SO_PEERCRED, SO_PEERGROUPS): not something the peer can claim.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups

  bool in_group(gid_t g) const;
};

[[nodiscard]] Result<PeerCredentials> peer_credentials(int fd);

// A group given as a name ("gridnode") or a number ("1234"). not_found-style errors
// (invalid_argument) for a name the system does not know.
[[nodiscard]] Result<gid_t> resolve_group(const std::string& name_or_gid);

// The user name for `uid`, or the number as text when it has none.
std::string user_name(uid_t uid);

}  // namespace gridnode::platform
