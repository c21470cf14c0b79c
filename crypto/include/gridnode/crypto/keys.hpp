#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "gridnode/crypto/random.hpp"
#include "gridnode/crypto/sha256.hpp"
#include "gridnode/platform/result.hpp"

namespace gridnode::crypto {

// ECDSA P-256 signature as raw r||s, each 32 bytes big-endian (the wire form of our envelopes).
using Signature = std::array<std::uint8_t, 64>;

struct KeyAccess;  // crypto/src only: hands the mbedTLS contexts to the TLS and X.509 code

// An ECDSA P-256 (secp256r1, prime256v1) public key.
//
// Copyable and cheap to copy: copies share one parsed, immutable key (shared_ptr), and there is
// no moved-from or empty state (moving copies). The group's fixed-base table is precomputed at
// construction, so verify() writes nothing and may run on many threads at once, on one key or
// its copies. Never throws.
class PublicKey {
 public:
  // "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo), as `openssl ec -pubout` writes it.
  // Other key types (RSA, P-384, ...) are refused with invalid_argument naming the type.
  [[nodiscard]] static platform::Result<PublicKey> from_pem(std::string_view pem);
  // SubjectPublicKeyInfo DER; trailing bytes are refused.
  [[nodiscard]] static platform::Result<PublicKey> from_der(std::span<const std::uint8_t> der);

  PublicKey(const PublicKey&) = default;
  PublicKey& operator=(const PublicKey&) = default;
  ~PublicKey();

  [[nodiscard]] platform::Result<std::string> to_pem() const;
  // SubjectPublicKeyInfo DER, uncompressed point: equal keys give equal bytes (fingerprints).
  [[nodiscard]] platform::Result<Bytes> to_der() const;

  // True when `signature` is a valid ECDSA signature of `digest` by this key. A malformed
  // signature (r or s zero or >= n) is simply false.
  bool verify(const Digest& digest, const Signature& signature) const;

  // Same curve point.
  friend bool operator==(const PublicKey& a, const PublicKey& b);

  struct Impl;

 private:
  friend struct KeyAccess;
  explicit PublicKey(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// An ECDSA P-256 private key; other key types are refused with a clear error.
//
// Copyable like PublicKey: copies share one immutable key, so the secret exists once in memory
// (zeroized by mbedTLS when the last copy goes); never empty. sign() may run on several threads
// at once, each with its own Random or one shared Random.
class PrivateKey {
 public:
  [[nodiscard]] static platform::Result<PrivateKey> generate(Random& random);
  // SEC1 "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY", unencrypted (an encrypted key is refused:
  // the daemon has nobody to ask for a passphrase). The text is copied into a NUL-terminated
  // buffer for mbedTLS and that copy is wiped. The key pair is checked for consistency.
  [[nodiscard]] static platform::Result<PrivateKey> from_pem(std::string_view pem);

  PrivateKey(const PrivateKey&) = default;
  PrivateKey& operator=(const PrivateKey&) = default;
  ~PrivateKey();

  // SEC1 PEM ("-----BEGIN EC PRIVATE KEY-----"), as `openssl ecparam -genkey` writes it.
  // The caller should wipe() the string when done with it.
  [[nodiscard]] platform::Result<std::string> to_pem() const;

  PublicKey public_key() const;

  // Deterministic ECDSA (RFC 6979) over SHA-256 digests: the same key and digest always give
  // the same signature; `random` only blinds the scalar multiplication against side channels.
  [[nodiscard]] platform::Result<Signature> sign(const Digest& digest, Random& random) const;

  struct Impl;

 private:
  friend struct KeyAccess;
  explicit PrivateKey(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// Overwrites the string's bytes with zeros in a way the compiler cannot drop
// (mbedtls_platform_zeroize), for copies of key material such as PrivateKey::to_pem()'s.
void wipe(std::string& secret);

// Raw r||s to the DER ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }, minimal encoding) that
// `openssl dgst -verify` and X.509 expect. Never fails in practice (at most 72 bytes).
[[nodiscard]] platform::Result<Bytes> signature_to_der(const Signature& signature);
// The same into a buffer of the longest encoding, without allocating; returns the length used.
using DerSignature = std::array<std::uint8_t, 72>;
std::size_t signature_to_der(const Signature& signature, DerSignature& out);
// Strict DER: refuses trailing bytes, wrong tags, long-form or wrong lengths, negative or
// non-minimal integers, and r or s longer than 32 bytes after a leading 0 octet
// (invalid_argument).
[[nodiscard]] platform::Result<Signature> signature_from_der(std::span<const std::uint8_t> der);

// Writes `key` as SEC1 PEM to `path` with mode 0600 whatever the umask, atomically (temporary
// file O_CREAT|O_EXCL|O_NOFOLLOW in the same directory, fsync, rename, fsync of the directory:
// see platform::write_file_atomic). Refuses an existing `path` (file_exists) unless `overwrite`.
[[nodiscard]] platform::Result<void> write_private_key_file(const std::string& path,
                                                            const PrivateKey& key,
                                                            bool overwrite = false);

// Loads a node key the way ssh loads an identity: follows a symlink, then refuses (permission
// denied) a file that group or others may read or write (mode & 077) with
// "permissions 0644 for '<path>' are too open: the node key must be readable by its owner only
// (chmod 600 '<path>')", and a file owned by neither the effective uid nor root; refuses a
// non-regular file (invalid_argument) and one over 64 KiB (file_too_large). The bytes read are
// wiped after parsing. Errors name the path.
[[nodiscard]] platform::Result<PrivateKey> load_private_key_file(const std::string& path);

}  // namespace gridnode::crypto
