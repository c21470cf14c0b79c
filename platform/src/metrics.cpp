#include "gridnode/platform/metrics.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace gridnode::platform {

std::uint32_t Catalog::add_family(Family family) {
  for (std::uint32_t i = 0; i < families.size(); ++i) {
    if (families[i].name == family.name) {
      return i;
    }
  }
  families.push_back(std::move(family));
  return static_cast<std::uint32_t>(families.size() - 1);
}

std::uint32_t Catalog::add_series(std::uint32_t family, Labels labels) {
  std::sort(labels.begin(), labels.end());
  series.push_back(Series{family, std::move(labels)});
  return static_cast<std::uint32_t>(series.size() - 1);
}

double to_double(Value value, Scale scale) {
  double v = value.is_signed ? static_cast<double>(value.as_int64())
                             : static_cast<double>(value.bits);
  v *= scale.mul;
  // Multiply or divide by an exact power of ten so that 41500e-3 gives 41.5, not
  // 41.500000000000007. A loop instead of std::pow keeps libm out of the daemon (it would stay
  // mapped and resident for this one call).
  double p = 1;
  for (int i = 0; i < (scale.exp10 < 0 ? -scale.exp10 : scale.exp10); ++i) {
    p *= 10;
  }
  return scale.exp10 >= 0 ? v * p : v / p;
}

std::size_t format_value(Value value, Scale scale, std::span<char, 64> out) {
  // |value * mul| fits in 128 bits (64 + 32); print it in decimal, then place the point.
  bool negative = value.negative();
  unsigned __int128 mag = negative ? static_cast<unsigned __int128>(-(value.as_int64() + 1)) + 1
                                   : static_cast<unsigned __int128>(value.bits);
  mag *= scale.mul;
  char digits[48];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + static_cast<int>(mag % 10));
    mag /= 10;
  } while (mag != 0);
  // digits[] is little-endian. Apply the exponent.
  std::size_t pos = 0;
  auto put = [&](char c) {
    if (pos < out.size()) {
      out[pos++] = c;
    }
  };
  bool all_zero = n == 1 && digits[0] == '0';
  if (negative && !all_zero) {
    put('-');
  }
  int exp = scale.exp10;
  if (all_zero) {
    put('0');
    return pos;
  }
  if (exp >= 0) {
    for (int i = n - 1; i >= 0; --i) {
      put(digits[i]);
    }
    for (int i = 0; i < exp; ++i) {
      put('0');
    }
    return pos;
  }
  int frac = -exp;  // digits after the point
  // Drop trailing zeros of the fraction: 41500e-3 is "41.5".
  int lowest = 0;
  while (lowest < frac && lowest < n && digits[lowest] == '0') {
    ++lowest;
  }
  if (n <= frac) {
    put('0');
    if (lowest < frac) {
      put('.');
      for (int i = frac - 1; i >= lowest; --i) {
        put(i < n ? digits[i] : '0');
      }
    }
    return pos;
  }
  for (int i = n - 1; i >= frac; --i) {
    put(digits[i]);
  }
  if (lowest < frac) {
    put('.');
    for (int i = frac - 1; i >= lowest; --i) {
      put(digits[i]);
    }
  }
  return pos;
}

std::string format_value(Value value, Scale scale) {
  std::array<char, 64> buf{};
  std::size_t n = format_value(value, scale, std::span<char, 64>(buf));
  return std::string(buf.data(), n);
}

}  // namespace gridnode::platform
