// Untrusted DER signatures (what an auditor hands us): never a crash; whatever parses converts
// back to DER that parses to the same r and s.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.hpp"
#include "gridnode/crypto/crypto.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto sig = gridnode::crypto::signature_from_der({data, size});
  if (!sig) {
    return 0;
  }
  auto der = gridnode::crypto::signature_to_der(*sig);
  if (!der) {
    gridnode::fuzz::property_failed("a parsed signature does not convert back to DER");
  }
  auto again = gridnode::crypto::signature_from_der(*der);
  if (!again || *again != *sig) {
    gridnode::fuzz::property_failed("DER round trip changed the signature");
  }
  return 0;
}
