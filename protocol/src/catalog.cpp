#include "gridnode/protocol/catalog.hpp"

#include "archive.hpp"

namespace gridnode::platform {

// cereal finds these by argument-dependent lookup; the field order is the wire order.
template <class Archive>
void serialize(Archive& ar, Family& f) {
  ar(f.name, f.help, f.type, f.scale.mul, f.scale.exp10, f.unit);
}
template <class Archive>
void serialize(Archive& ar, Series& s) {
  ar(s.family, s.labels);
}

}  // namespace gridnode::platform

namespace gridnode::protocol {
namespace {

bool name_char(char c, bool first, bool colon) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon) {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon)) {
      return false;
    }
  }
  return true;
}

// format_value prints |v| * mul * 10^exp10 into 64 bytes: 20 digits + 10 for mul, so the
// exponent is bounded to keep every value printable.
constexpr int kMaxExp10 = 18;

platform::Result<void> validate(const platform::Catalog& c) {
  for (std::size_t i = 0; i < c.families.size(); ++i) {
    const auto& f = c.families[i];
    std::string where = "family " + std::to_string(i);
    if (!valid_metric_name(f.name)) {
      return platform::fail(std::errc::bad_message, where + ": invalid metric name");
    }
    if (f.type != platform::MetricType::gauge && f.type != platform::MetricType::counter) {
      return platform::fail(std::errc::bad_message, where + " (" + f.name + "): unknown type");
    }
    if (f.scale.mul == 0 || f.scale.exp10 < -kMaxExp10 || f.scale.exp10 > kMaxExp10) {
      return platform::fail(std::errc::bad_message, where + " (" + f.name + "): invalid scale");
    }
  }
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    const auto& s = c.series[i];
    if (s.family >= c.families.size()) {
      return platform::fail(std::errc::bad_message,
                            "series " + std::to_string(i) + ": family index out of range");
    }
    for (std::size_t j = 0; j < s.labels.size(); ++j) {
      if (!valid_label_name(s.labels[j].first)) {
        return platform::fail(std::errc::bad_message,
                              "series " + std::to_string(i) + ": invalid label name");
      }
      if (j > 0 && !(s.labels[j - 1].first < s.labels[j].first)) {
        return platform::fail(std::errc::bad_message,
                              "series " + std::to_string(i) + ": labels not sorted or repeated");
      }
    }
  }
  return {};
}

}  // namespace

bool valid_metric_name(std::string_view name) { return valid_name(name, true); }
bool valid_label_name(std::string_view name) { return valid_name(name, false); }

Bytes encode_catalog(const platform::Catalog& catalog) {
  Bytes out;
  Writer w(out);
  w.u8(kCatalogVersion);
  WireOutputArchive ar(w);
  ar(catalog.families, catalog.series);
  return out;
}

platform::Result<platform::Catalog> decode_catalog(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  if (auto v = expect_version(r, kCatalogVersion, "catalog"); !v) {
    return tl::unexpected(v.error());
  }
  platform::Catalog c;
  try {
    WireInputArchive ar(r);
    ar(c.families, c.series);
  } catch (const DecodeError& e) {
    return tl::unexpected(platform::Error{e.error.code, "catalog: " + e.error.context});
  }
  if (!r.at_end()) {
    return r.error("catalog: trailing bytes");
  }
  if (auto v = validate(c); !v) {
    return platform::fail(std::errc::bad_message, "catalog: " + v.error().context);
  }
  return c;
}

EncodedCatalog EncodedCatalog::of(platform::Catalog catalog) {
  EncodedCatalog e;
  e.bytes = encode_catalog(catalog);
  e.digest = crypto::sha256(std::span<const std::uint8_t>(e.bytes));
  e.catalog = std::move(catalog);
  return e;
}

}  // namespace gridnode::protocol
