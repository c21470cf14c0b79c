// Untrusted report messages, decoded against a fixed catalog: never a crash; a keyframe that
// decodes re-encodes to exactly the same bytes (one report, one encoding, one digest).
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.hpp"
#include "gridnode/protocol/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gridnode::protocol;
  std::span<const std::uint8_t> in(data, size);
  (void)decode_header(in);
  const auto& catalog = gridnode::fuzz::fixed_catalog();
  ReportDecoder decoder;
  auto report = decoder.decode(in, catalog);
  if (!report) {
    return 0;
  }
  // Decoding the same bytes right after: a keyframe decodes again; a delta cannot be coded
  // against itself unless its prev is its own digest, which SHA-256 makes impossible.
  auto again = decoder.decode(in, catalog);
  if (static_cast<bool>(again) != report->header.keyframe) {
    gridnode::fuzz::property_failed("second decode of the same report");
  }
  if (report->header.keyframe) {
    ReportEncoder encoder;
    ReportHeader header = report->header;
    Bytes out;
    encoder.encode(catalog, header, report->events, report->values, out);
    if (out.size() != size || !std::equal(out.begin(), out.end(), in.begin())) {
      gridnode::fuzz::property_failed("keyframe re-encodes to other bytes");
    }
  }
  return 0;
}
