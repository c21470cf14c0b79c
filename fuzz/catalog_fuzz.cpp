// Untrusted catalog bytes: never a crash, a bounded allocation, and the encoding is canonical —
// whatever decodes re-encodes to exactly the same bytes (so equal catalogs have one digest).
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.hpp"
#include "gridnode/protocol/catalog.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  auto catalog = gridnode::protocol::decode_catalog(in);
  if (catalog) {
    auto again = gridnode::protocol::encode_catalog(*catalog);
    if (again.size() != size || !std::equal(again.begin(), again.end(), in.begin())) {
      gridnode::fuzz::property_failed("catalog re-encodes to other bytes");
    }
  }
  return 0;
}
