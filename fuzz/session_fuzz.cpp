// Untrusted uplink session payloads (docs/protocol.md §6a, §6b), the collector's and the agent's
// side alike: the first byte picks the decoder, the rest is the frame's payload. Never a crash,
// and whatever decodes re-encodes to exactly the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.hpp"
#include "gridnode/protocol/session.hpp"

namespace {

using namespace gridnode::protocol;

template <class M>
void check(const gridnode::platform::Result<M>& m, std::span<const std::uint8_t> in) {
  if (!m) {
    return;
  }
  Bytes again;
  encode(*m, again);
  if (again.size() != in.size() || !std::equal(again.begin(), again.end(), in.begin())) {
    gridnode::fuzz::property_failed("a session message re-encodes to other bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  std::span<const std::uint8_t> in(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0: check(decode_hello(in), in); break;
    case 1: check(decode_welcome(in), in); break;
    case 2: check(decode_ack(in), in); break;
    case 3: check(decode_reject(in), in); break;
    case 4: check(decode_policy_push(in), in); break;
    default: check(decode_policy_status(in), in); break;
  }
  return 0;
}
