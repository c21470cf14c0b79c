#include "gridnode/agent/policy_bundle.hpp"

#include "gridnode/crypto/base64.hpp"

namespace gridnode::agent {

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

platform::Result<Policy> verify_bundle(std::string_view bytes, const crypto::PublicKey& key,
                                       const std::string& origin) {
  auto b = parse_bundle(bytes);
  if (!b) {
    return platform::fail(b.error().code, origin + ": " + b.error().context);
  }
  if (!key.verify(crypto::sha256(b->policy), b->signature)) {
    return platform::fail(std::errc::permission_denied,
                          origin + ": signature does not verify with the policy key");
  }
  auto policy = parse_policy(b->policy, origin);
  if (!policy) {
    return policy;
  }
  if (policy->version == 0) {
    return platform::fail(std::errc::invalid_argument,
                          origin + ": a signed policy needs [policy] version >= 1");
  }
  return policy;
}

platform::Result<std::string> make_bundle(std::string_view policy_text,
                                          const crypto::PrivateKey& key, crypto::Random& random) {
  auto sig = key.sign(crypto::sha256(policy_text), random);
  if (!sig) {
    return tl::unexpected(sig.error());
  }
  auto der = crypto::signature_to_der(*sig);
  if (!der) {
    return tl::unexpected(der.error());
  }
  std::string out(kBundleMagic);
  out += "signature ";
  crypto::append_base64(*der, out);
  out += "\n\n";
  out += policy_text;
  return out;
}

BundleDecision decide_bundle(const Policy& current, const Policy& candidate) {
  if (candidate.version > current.version) {
    return BundleDecision::apply;
  }
  if (candidate.version == current.version && candidate.digest == current.digest) {
    return BundleDecision::same;
  }
  return BundleDecision::rollback;
}

}  // namespace gridnode::agent
