// A whole untrusted report file, as `gridnode-collector inspect` reads it: magic, frames,
// catalogs kept by digest, signed reports split, headers and values decoded in order, the chain
// classified. Never a crash, never a runaway allocation.
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>

#include "gridnode/protocol/chain.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gridnode::protocol;
  auto body = report_file_body({data, size});
  if (!body) {
    return 0;
  }
  std::map<gridnode::crypto::Digest, EncodedCatalog> catalogs;
  ReportDecoder decoder;
  ChainVerifier chain;
  FrameReader frames(*body);
  for (int n = 0; n < 1000; ++n) {
    auto frame = frames.next();
    if (!frame || !*frame) {
      break;
    }
    const Frame& f = **frame;
    if (f.kind == FrameKind::catalog) {
      if (auto c = decode_catalog(f.payload)) {
        EncodedCatalog e;
        e.digest = gridnode::crypto::sha256(f.payload);
        e.catalog = std::move(*c);
        catalogs.insert_or_assign(e.digest, std::move(e));
      }
      continue;
    }
    auto envelope = split_envelope(f.payload);
    if (!envelope) {
      continue;
    }
    if (f.kind == FrameKind::gap) {
      (void)decode_gap(envelope->message);
      continue;
    }
    auto header = decode_header(envelope->message);
    if (!header) {
      continue;
    }
    (void)chain.check(header->header, header->digest);
    auto catalog = catalogs.find(header->header.same_identity ? decoder.current_catalog()
                                                              : header->header.catalog);
    if (catalog != catalogs.end()) {
      (void)decoder.decode(envelope->message, catalog->second);
    }
  }
  return 0;
}
