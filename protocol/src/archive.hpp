#pragma once

// cereal archives that write gridnode's wire primitives (docs/protocol.md): unsigned integers as
// LEB128 varints, signed ones as zigzag varints, one byte for uint8/bool/enums of one byte,
// strings and sequences with a varint length. cereal's own binary archives write 8-byte sizes
// and raw host-endian integers and would allocate whatever size a hostile peer names; these read
// through protocol::Reader, so every length is checked against what is actually there.
//
// Private to protocol/: the structured parts (catalog, report header, events) are serialised
// with these; the value columns have their own codec (report.cpp).

#include <exception>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/utility.hpp>

#include "gridnode/protocol/wire.hpp"

namespace gridnode::protocol {

// What a decoder throws inside cereal and catches at its boundary (decode_* never throw).
struct DecodeError : std::exception {
  explicit DecodeError(platform::Error e) : error(std::move(e)) {}
  const char* what() const noexcept override { return "gridnode decode error"; }
  platform::Error error;
};

// Reads a structure's version byte: `version`, or protocol_not_supported naming `what`.
inline platform::Result<void> expect_version(Reader& r, std::uint8_t version, std::string_view what) {
  auto v = r.u8();
  if (!v) {
    return tl::unexpected(v.error());
  }
  if (*v != version) {
    return platform::fail(std::errc::protocol_not_supported,
                          std::string(what) + " version " + std::to_string(*v) +
                              " (this build reads " + std::to_string(version) + ")");
  }
  return {};
}

// Limits on anything a peer can make us allocate (docs/protocol.md, "Limits").
inline constexpr std::size_t kMaxString = 65535;
inline constexpr std::size_t kMaxElements = std::size_t{1} << 20;

class WireOutputArchive
    : public cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit WireOutputArchive(Writer& w)
      : cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision>(this), w_(w) {}
  Writer& writer() { return w_; }

 private:
  Writer& w_;
};

class WireInputArchive
    : public cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit WireInputArchive(Reader& r)
      : cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision>(this), r_(r) {}
  Reader& reader() { return r_; }

  template <class T>
  T take(platform::Result<T> r) {
    if (!r) {
      throw DecodeError(std::move(r.error()));
    }
    return std::move(*r);
  }
  [[noreturn]] void fail(std::string_view what) { throw DecodeError(r_.error(what).value()); }

 private:
  Reader& r_;
};

template <class T>
concept WireByte = std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool> ||
                   std::is_same_v<T, char>;
template <class T>
concept WireUnsigned = std::is_integral_v<T> && std::is_unsigned_v<T> && !WireByte<T>;
template <class T>
concept WireSigned = std::is_integral_v<T> && std::is_signed_v<T> && !WireByte<T>;

// --- integers ---
template <WireByte T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const T& v) {
  ar.writer().u8(static_cast<std::uint8_t>(v));
}
template <WireByte T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, T& v) {
  std::uint8_t b = ar.take(ar.reader().u8());
  if constexpr (std::is_same_v<T, bool>) {
    if (b > 1) {
      ar.fail("boolean is neither 0 nor 1");
    }
  }
  v = static_cast<T>(b);
}
template <WireUnsigned T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const T& v) {
  ar.writer().uvarint(v);
}
template <WireUnsigned T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, T& v) {
  std::uint64_t u = ar.take(ar.reader().uvarint());
  if (u > std::numeric_limits<T>::max()) {
    ar.fail("integer out of range");
  }
  v = static_cast<T>(u);
}
template <WireSigned T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const T& v) {
  ar.writer().svarint(v);
}
template <WireSigned T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, T& v) {
  std::int64_t s = ar.take(ar.reader().svarint());
  if (s < std::numeric_limits<T>::min() || s > std::numeric_limits<T>::max()) {
    ar.fail("integer out of range");
  }
  v = static_cast<T>(s);
}

// --- fixed-size byte arrays (digests, boot ids): raw bytes ---
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const cereal::BinaryData<T>& bd) {
  ar.writer().fixed({reinterpret_cast<const std::uint8_t*>(bd.data), bd.size});
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, cereal::BinaryData<T>& bd) {
  auto bytes = ar.take(ar.reader().fixed(bd.size));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<std::uint8_t*>(bd.data));
}

// --- NameValuePair (pairs use them): the value only, names are not on the wire ---
template <class Archive, class T>
  requires std::is_same_v<Archive, WireOutputArchive> || std::is_same_v<Archive, WireInputArchive>
void CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

// --- strings and sequences: varint length, checked against the bytes left ---
inline void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const std::string& s) {
  ar.writer().string(s);
}
inline void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, std::string& s) {
  s = ar.take(ar.reader().string(kMaxString));
}
template <class T, class A>
void CEREAL_SAVE_FUNCTION_NAME(WireOutputArchive& ar, const std::vector<T, A>& v) {
  ar.writer().uvarint(v.size());
  for (const auto& e : v) {
    ar(e);
  }
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(WireInputArchive& ar, std::vector<T, A>& v) {
  std::uint64_t n = ar.take(ar.reader().uvarint());
  // Every element takes at least one byte, so a count above what is left is a lie; and the
  // vector grows as elements actually decode instead of trusting the count up front.
  if (n > ar.reader().remaining() || n > kMaxElements) {
    ar.fail("sequence of " + std::to_string(n) + " elements cannot fit");
  }
  v.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    v.emplace_back();
    ar(v.back());
  }
}

}  // namespace gridnode::protocol

CEREAL_REGISTER_ARCHIVE(gridnode::protocol::WireOutputArchive)
CEREAL_REGISTER_ARCHIVE(gridnode::protocol::WireInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(gridnode::protocol::WireInputArchive,
                            gridnode::protocol::WireOutputArchive)
