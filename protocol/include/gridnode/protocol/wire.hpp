#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gridnode/platform/result.hpp"

// The primitives every gridnode wire structure is made of (docs/protocol.md, "Primitives"):
// bytes, LEB128 varints, zigzag varints, length-prefixed strings. The Reader is the only thing
// that touches untrusted bytes, so every bound is checked here, once.
namespace gridnode::protocol {

using Bytes = std::vector<std::uint8_t>;

inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t unzigzag(std::uint64_t u) {
  return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

// Appends to a caller-owned buffer, so an encoder that keeps its buffer allocates nothing once
// the buffer has grown to a report's size.
class Writer {
 public:
  explicit Writer(Bytes& out) : out_(&out) {}

  void u8(std::uint8_t v) { out_->push_back(v); }
  void uvarint(std::uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<std::uint8_t>(v));
  }
  void svarint(std::int64_t v) { uvarint(zigzag(v)); }
  void fixed(std::span<const std::uint8_t> bytes) {
    out_->insert(out_->end(), bytes.begin(), bytes.end());
  }
  // uvarint length, then the bytes.
  void string(std::string_view s) {
    uvarint(s.size());
    out_->insert(out_->end(), s.begin(), s.end());
  }
  std::size_t size() const { return out_->size(); }
  Bytes& buffer() { return *out_; }

 private:
  Bytes* out_;
};

// Reads untrusted bytes. Every read is bounds-checked and fails with errc::bad_message and the
// byte offset; nothing here allocates.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  [[nodiscard]] platform::Result<std::uint8_t> u8();
  // Canonical LEB128 only: at most 10 bytes, no value above 2^64-1, no redundant trailing zero
  // byte, so that every value has exactly one encoding.
  [[nodiscard]] platform::Result<std::uint64_t> uvarint();
  [[nodiscard]] platform::Result<std::int64_t> svarint();
  [[nodiscard]] platform::Result<std::span<const std::uint8_t>> fixed(std::size_t n);
  // A length-prefixed string of at most `max` bytes (and never more than what is left).
  [[nodiscard]] platform::Result<std::string_view> string(std::size_t max);

  std::size_t offset() const { return pos_; }
  std::size_t remaining() const { return in_.size() - pos_; }
  bool at_end() const { return pos_ == in_.size(); }

  // "<what> at byte <offset>" as errc::bad_message: for checks made by the caller.
  [[nodiscard]] tl::unexpected<platform::Error> error(std::string_view what) const;

 private:
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

}  // namespace gridnode::protocol
