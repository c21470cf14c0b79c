#include "spool_format.hpp"

#include <bit>

#include "gridnode/platform/files.hpp"

namespace gridnode::agent {
namespace {

// CRC-32C, slice-by-8: t[0] is the byte-wise table, t[k][i] the CRC of byte i followed by k
// zero bytes, so eight bytes fold in with eight lookups.
struct CrcTables {
  std::uint32_t t[8][256];
};

constexpr CrcTables make_crc_tables() {
  CrcTables c{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t v = i;
    for (int k = 0; k < 8; ++k) {
      v = (v >> 1) ^ ((v & 1u) != 0 ? 0x82F63B78u : 0u);
    }
    c.t[0][i] = v;
  }
  for (int k = 1; k < 8; ++k) {
    for (std::uint32_t i = 0; i < 256; ++i) {
      c.t[k][i] = (c.t[k - 1][i] >> 8) ^ c.t[0][c.t[k - 1][i] & 0xffu];
    }
  }
  return c;
}

constexpr CrcTables kCrc = make_crc_tables();

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc) {
  crc = ~crc;
  const std::uint8_t* p = data.data();
  std::size_t n = data.size();
  if constexpr (std::endian::native == std::endian::little) {
    while (n >= 8) {
      std::uint64_t v;
      std::memcpy(&v, p, 8);
      v ^= crc;
      crc = kCrc.t[7][v & 0xff] ^ kCrc.t[6][(v >> 8) & 0xff] ^ kCrc.t[5][(v >> 16) & 0xff] ^
            kCrc.t[4][(v >> 24) & 0xff] ^ kCrc.t[3][(v >> 32) & 0xff] ^
            kCrc.t[2][(v >> 40) & 0xff] ^ kCrc.t[1][(v >> 48) & 0xff] ^ kCrc.t[0][v >> 56];
      p += 8;
      n -= 8;
    }
  }
  while (n-- > 0) {
    crc = kCrc.t[0][(crc ^ *p++) & 0xffu] ^ (crc >> 8);
  }
  return ~crc;
}

namespace spool_internal {

void put_record(protocol::Bytes& out, FrameKind kind, std::uint8_t flags, std::uint64_t seq,
                std::span<const std::uint8_t> payload) {
  const std::size_t at = out.size();
  const auto length = static_cast<std::uint32_t>(fmt::kBodyFixedSize + payload.size());
  out.resize(at + fmt::kRecordOverhead);
  std::uint8_t* h = out.data() + at;
  std::memcpy(h, fmt::kRecordMagic.data(), fmt::kRecordMagic.size());
  put_u32(h + 4, length);
  h[12] = static_cast<std::uint8_t>(kind);
  h[13] = flags;
  put_u64(h + 14, seq);
  out.insert(out.end(), payload.begin(), payload.end());
  h = out.data() + at;
  std::uint32_t crc = crc32c({h + 4, 4});
  crc = crc32c({h + fmt::kHeaderSize, length}, crc);
  put_u32(h + 8, crc);
}

std::optional<std::uint64_t> parse_segment_name(const std::string& name) {
  if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') {
      return std::nullopt;
    }
  }
  auto v = platform::parse_uint64(std::string_view(name).substr(0, 20));
  if (!v) {
    return std::nullopt;
  }
  return *v;
}

}  // namespace spool_internal
}  // namespace gridnode::agent
