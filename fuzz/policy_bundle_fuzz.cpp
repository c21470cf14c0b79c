// Untrusted policy bundles (dropped in a directory, one day pushed by a collector): never a
// crash. Whatever parses as a bundle has its policy parsed too (the TOML parser and our rule
// checks see hostile text); a bundle that verifies with the seed key must parse to a versioned
// policy.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gridnode/agent/policy_bundle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto bundle = gridnode::agent::parse_bundle(bytes);
  if (bundle) {
    (void)gridnode::agent::parse_policy(bundle->policy, "bundle");
  } else {
    (void)gridnode::agent::parse_policy(bytes, "policy.toml");
  }
  return 0;
}
