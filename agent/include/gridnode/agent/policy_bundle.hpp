#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gridnode/agent/policy.hpp"
#include "gridnode/crypto/keys.hpp"
#include "gridnode/platform/result.hpp"

// A signed policy bundle (docs/policy.md, "Signed bundles"): the policy TOML with the grid's
// policy-key signature over its exact bytes, in one text file that stock tools can make:
//
//   gridnode-policy-bundle 1\n
//   signature <base64 of the DER ECDSA P-256 signature of SHA-256(policy)>\n
//   \n
//   <policy TOML, byte for byte what was signed>
//
// The version the agent compares for rollback is the policy's own [policy] version, so it is
// covered by the signature.
namespace gridnode::agent {

inline constexpr std::string_view kBundleMagic = "gridnode-policy-bundle 1\n";
inline constexpr std::size_t kMaxBundleBytes = 1 << 20;

struct PolicyBundle {
  std::string_view policy;  // into the parsed bytes
  crypto::Signature signature{};
};

// Splits a bundle into its policy text and signature; checks the format only (fuzzed).
// invalid_argument for anything malformed, file_too_large above kMaxBundleBytes.
[[nodiscard]] platform::Result<PolicyBundle> parse_bundle(std::string_view bytes);

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
