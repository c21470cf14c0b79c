#include "gridnode/collector/verifier.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace gridnode::collector {
namespace {

EVP_PKEY_CTX* verify_context(const crypto::PublicKey& key) {
  auto der = key.to_der();
  if (!der) {
    return nullptr;
  }
  const unsigned char* p = der->data();
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size()));
  if (pkey == nullptr) {
    ERR_clear_error();
    return nullptr;
  }
  // The context holds its own reference to the key.
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pkey, nullptr);
  EVP_PKEY_free(pkey);
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx) != 1) {
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
}

}  // namespace

void ReportVerifier::CtxFree::operator()(void* ctx) const {
  EVP_PKEY_CTX_free(static_cast<EVP_PKEY_CTX*>(ctx));
}

ReportVerifier::ReportVerifier(crypto::PublicKey key)
    : key_(std::move(key)), ctx_(verify_context(key_)) {}
ReportVerifier::ReportVerifier(ReportVerifier&&) noexcept = default;
ReportVerifier& ReportVerifier::operator=(ReportVerifier&&) noexcept = default;
ReportVerifier::~ReportVerifier() = default;

bool ReportVerifier::verify(const crypto::Digest& digest,
                            const crypto::Signature& signature) const {
  if (ctx_ == nullptr) {
    return key_.verify(digest, signature);
  }
  crypto::DerSignature der;
  const std::size_t n = crypto::signature_to_der(signature, der);
  const int rc = EVP_PKEY_verify(static_cast<EVP_PKEY_CTX*>(ctx_.get()), der.data(), n,
                                 digest.data(), digest.size());
  if (rc != 1) {
    ERR_clear_error();  // a bad signature leaves an error on this thread's queue
    return false;
  }
  return true;
}

}  // namespace gridnode::collector
