#pragma once

#include <span>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/metrics.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/wire.hpp"

namespace gridnode::protocol {

inline constexpr std::uint8_t kCatalogVersion = 1;

// The catalog's wire form (docs/protocol.md, "Catalog"). Encoding is deterministic, so equal
// catalogs have equal bytes and equal digests: a report names its catalog by that digest.
[[nodiscard]] Bytes encode_catalog(const platform::Catalog& catalog);

// Decodes and validates untrusted bytes: metric and label names as Prometheus allows them,
// family indexes in range, a known type, a scale that format_value can print. Never allocates
// more than a small multiple of `bytes.size()`.
[[nodiscard]] platform::Result<platform::Catalog> decode_catalog(std::span<const std::uint8_t> bytes);

// A catalog with its wire bytes and digest, computed once when the catalog changes.
struct EncodedCatalog {
  platform::Catalog catalog;
  Bytes bytes;
  crypto::Digest digest{};

  static EncodedCatalog of(platform::Catalog catalog);
};

// [a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*, as Prometheus defines them.
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

}  // namespace gridnode::protocol
