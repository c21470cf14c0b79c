#include "gridnode/protocol/wire.hpp"

namespace gridnode::protocol {

tl::unexpected<platform::Error> Reader::error(std::string_view what) const {
  return platform::fail(std::errc::bad_message,
                        std::string(what) + " at byte " + std::to_string(pos_));
}

platform::Result<std::uint8_t> Reader::u8() {
  if (pos_ >= in_.size()) {
    return error("truncated: byte expected");
  }
  return in_[pos_++];
}

platform::Result<std::uint64_t> Reader::uvarint() {
  std::uint64_t v = 0;
  const std::size_t start = pos_;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (pos_ >= in_.size()) {
      pos_ = start;
      return error("truncated varint");
    }
    std::uint8_t b = in_[pos_++];
    if (shift == 63 && b > 1) {
      pos_ = start;
      return error("varint above 2^64-1");
    }
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      if (b == 0 && shift != 0) {
        pos_ = start;
        return error("non-canonical varint (redundant zero byte)");
      }
      return v;
    }
  }
  pos_ = start;
  return error("varint longer than 10 bytes");
}

platform::Result<std::int64_t> Reader::svarint() {
  auto u = uvarint();
  if (!u) {
    return tl::unexpected(u.error());
  }
  return unzigzag(*u);
}

platform::Result<std::span<const std::uint8_t>> Reader::fixed(std::size_t n) {
  if (n > remaining()) {
    return error("truncated: " + std::to_string(n) + " bytes expected, " +
                 std::to_string(remaining()) + " left");
  }
  auto s = in_.subspan(pos_, n);
  pos_ += n;
  return s;
}

platform::Result<std::string_view> Reader::string(std::size_t max) {
  const std::size_t start = pos_;
  auto n = uvarint();
  if (!n) {
    return tl::unexpected(n.error());
  }
  if (*n > max) {
    pos_ = start;
    return error("string of " + std::to_string(*n) + " bytes exceeds the limit of " +
                 std::to_string(max));
  }
  auto bytes = fixed(static_cast<std::size_t>(*n));
  if (!bytes) {
    pos_ = start;
    return tl::unexpected(bytes.error());
  }
  return std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

}  // namespace gridnode::protocol
