#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gridnode/agent/policy.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/policy_bundle.hpp"

// Signed policy bundles (docs/policy.md, "Signed bundles"): the format and its signature are
// protocol/'s (gridnode/protocol/policy_bundle.hpp: the collector checks them too); the policy
// inside, its version and the rollback rule are the agent's. The version the agent compares for
// rollback is the policy's own [policy] version, so it is covered by the signature.
namespace gridnode::agent {

using protocol::kBundleMagic;
using protocol::kMaxBundleBytes;
using protocol::parse_bundle;
using protocol::PolicyBundle;

// Checks the signature with the grid's policy key, then parses the policy; a bundle's policy
// must carry a [policy] version >= 1. permission_denied for a bad signature.
[[nodiscard]] platform::Result<Policy> verify_bundle(std::string_view bytes,
                                                     const crypto::PublicKey& key,
                                                     const std::string& origin);

// The bundle of `policy_text` signed with `key` (tests, and tools that sign policies).
[[nodiscard]] platform::Result<std::string> make_bundle(std::string_view policy_text,
                                                        const crypto::PrivateKey& key,
                                                        crypto::Random& random);

// Whether a verified bundle may replace the policy in force: only a newer version. A bundle
// of the version in force with the same digest is a no-op (nullopt, nothing to do); anything
// else not newer is a rollback (the error says which versions).
enum class BundleDecision : std::uint8_t { apply, same, rollback };
BundleDecision decide_bundle(const Policy& current, const Policy& candidate);

}  // namespace gridnode::agent
