#include "gridnode/agent/policy_bundle.hpp"

#include "gridnode/crypto/base64.hpp"

namespace gridnode::agent {

platform::Result<Policy> verify_bundle(std::string_view bytes, const crypto::PublicKey& key,
                                       const std::string& origin) {
  auto b = protocol::verify_bundle_signature(bytes, key);
  if (!b) {
    return platform::fail(b.error().code, origin + ": " + b.error().context);
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
