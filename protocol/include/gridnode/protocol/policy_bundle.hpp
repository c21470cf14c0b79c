#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/result.hpp"

// A signed policy bundle (docs/policy.md, "Signed bundles"): the policy TOML with the grid's
// policy-key signature over its exact bytes, in one text file that stock tools can make:
//
//   gridnode-policy-bundle 1\n
//   signature <base64 of the DER ECDSA P-256 signature of SHA-256(policy)>\n
//   \n
//   <policy TOML, byte for byte what was signed>
//
// The same bytes travel in a directory (the agent's [policy] bundle_dir) and over the uplink
// (a policy_bundle frame, docs/protocol.md §6b). Here is the format and the signature, which
// the collector checks before it offers a bundle; what the policy says is the agent's business
// (gridnode/agent/policy_bundle.hpp).
namespace gridnode::protocol {

inline constexpr std::string_view kBundleMagic = "gridnode-policy-bundle 1\n";
inline constexpr std::size_t kMaxBundleBytes = std::size_t{1} << 20;

struct PolicyBundle {
  std::string_view policy;  // into the parsed bytes
  crypto::Signature signature{};
};

// Splits a bundle into its policy text and signature; checks the format only (fuzzed).
// invalid_argument for anything malformed, file_too_large above kMaxBundleBytes.
[[nodiscard]] platform::Result<PolicyBundle> parse_bundle(std::string_view bytes);

// parse_bundle, then the signature over SHA-256(policy) with `key`: permission_denied ("signature
// does not verify with the policy key") when it is not the key's.
[[nodiscard]] platform::Result<PolicyBundle> verify_bundle_signature(std::string_view bytes,
                                                                     const crypto::PublicKey& key);

}  // namespace gridnode::protocol
