#include "gridnode/protocol/policy_bundle.hpp"

#include "gridnode/crypto/base64.hpp"

namespace gridnode::protocol {

platform::Result<PolicyBundle> parse_bundle(std::string_view bytes) {
  if (bytes.size() > kMaxBundleBytes) {
    return platform::fail(std::errc::file_too_large, "policy bundle larger than 1 MiB");
  }
  if (!bytes.starts_with(kBundleMagic)) {
    return platform::fail(std::errc::invalid_argument,
                          "not a policy bundle (no \"gridnode-policy-bundle 1\" line)");
  }
  std::string_view rest = bytes.substr(kBundleMagic.size());
  constexpr std::string_view kSig = "signature ";
  auto eol = rest.find('\n');
  if (!rest.starts_with(kSig) || eol == std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument, "policy bundle: no signature line");
  }
  std::string_view b64 = rest.substr(kSig.size(), eol - kSig.size());
  rest = rest.substr(eol + 1);
  if (!rest.starts_with('\n')) {
    return platform::fail(std::errc::invalid_argument,
                          "policy bundle: an empty line must follow the signature");
  }
  auto der = crypto::from_base64(b64);
  if (!der) {
    return platform::fail(std::errc::invalid_argument, "policy bundle: signature is not base64");
  }
  auto sig = crypto::signature_from_der(*der);
  if (!sig) {
    return platform::fail(std::errc::invalid_argument,
                          "policy bundle: signature is not a DER ECDSA signature");
  }
  return PolicyBundle{rest.substr(1), *sig};
}

platform::Result<PolicyBundle> verify_bundle_signature(std::string_view bytes,
                                                       const crypto::PublicKey& key) {
  auto b = parse_bundle(bytes);
  if (!b) {
    return b;
  }
  if (!key.verify(crypto::sha256(b->policy), b->signature)) {
    return platform::fail(std::errc::permission_denied,
                          "signature does not verify with the policy key");
  }
  return b;
}

}  // namespace gridnode::protocol
