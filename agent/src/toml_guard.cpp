#include "toml_guard.hpp"

#include <cstdint>
#include <utility>

namespace gridnode::agent {

// Two bugs of toml++ 3.x (Debian 12's) are reached by hostile text, both assertions that are
// undefined behaviour under NDEBUG (TOML_ASSERT_ASSUME, TOML_UNREACHABLE); our fuzzer found
// both. (1) After a table header's "[" or "[[" it enters parse_key() without checking the next
// character: "[[[1]]]", "[>a]" (the "[[" case is fixed upstream, marzer/tomlplusplus#301).
// (2) is_non_ascii_horizontal_whitespace() reaches TOML_UNREACHABLE for most non-ASCII
// characters where whitespace may appear, i.e. outside strings and comments. A policy may be
// any file handed to `gridnodectl policy check`, and agent.toml is input too, so this scan
// refuses both before toml++ sees either. Strings and comments may hold any UTF-8; a line of a
// multi-line array that starts with "[" and no key character is refused too (neither file has
// arrays of arrays). A quote opens a string only where TOML has one (a key or a value: after a
// line's start, "=", "[", ",", "{" or "."): elsewhere toml++ reads no string either
// (`n = 3'...` is an integer and then garbage), so what follows is code. The fuzzer reached the
// bug past an earlier scan that took `3'gri3...` followed by U+FEFD for a string.
platform::Result<void> refuse_toml_hazards(std::string_view text, const std::string& origin) {
  enum class In { code, comment, basic, literal, ml_basic, ml_literal } in = In::code;
  std::size_t line = 1;
  bool line_start = true;
  char last = '\n';  // the last character of code that is not whitespace ('\n': none this line)
  auto opens_string = [&last] {
    return last == '\n' || last == '=' || last == '[' || last == ',' || last == '{' || last == '.';
  };
  auto fail_at = [&](const char* what) {
    return platform::fail(std::errc::invalid_argument,
                          origin + ":" + std::to_string(line) + ": " + what);
  };
  auto is_key_start = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '"' || c == '\'';
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const std::string_view rest = text.substr(i);
    if (c == '\n') {
      ++line;
      line_start = true;
      last = '\n';
      if (in == In::comment || in == In::basic || in == In::literal) {
        in = In::code;
      }
      continue;
    }
    switch (in) {
      case In::code:
        if (c == ' ' || c == '\t' || c == '\r') {
          continue;
        }
        if (line_start && c == '[') {
          std::size_t at = rest.starts_with("[[") ? 2 : 1;
          while (at < rest.size() && (rest[at] == ' ' || rest[at] == '\t')) {
            ++at;
          }
          if (at >= rest.size() || !is_key_start(rest[at])) {
            return fail_at("malformed table header (a key must follow \"[\")");
          }
        }
        line_start = false;
        if (static_cast<unsigned char>(c) >= 0x80) {
          return fail_at("a non-ASCII character outside a string or comment");
        }
        if (c == '#') {
          in = In::comment;
        } else if ((c == '"' || c == '\'') && !opens_string()) {
          // no string where TOML has none: what follows stays code
        } else if (rest.starts_with(R"(""")")) {
          in = In::ml_basic;
          i += 2;
        } else if (rest.starts_with("'''")) {
          in = In::ml_literal;
          i += 2;
        } else if (c == '"') {
          in = In::basic;
        } else if (c == '\'') {
          in = In::literal;
        }
        last = c;
        break;
      case In::comment:
        break;
      case In::basic:
      case In::ml_basic:
        if (c == '\\') {
          ++i;  // the escaped character; an escaped newline still counts as a line
          if (i < text.size() && text[i] == '\n') {
            ++line;
          }
        } else if (in == In::basic && c == '"') {
          in = In::code;
        } else if (in == In::ml_basic && rest.starts_with(R"(""")")) {
          in = In::code;
          i += 2;
        }
        break;
      case In::literal:
        if (c == '\'') {
          in = In::code;
        }
        break;
      case In::ml_literal:
        if (rest.starts_with("'''")) {
          in = In::code;
          i += 2;
        }
        break;
    }
  }
  return {};
}

}  // namespace gridnode::agent

namespace gridnode::agent {
namespace {

// toml++ 3.3's is_non_ascii_horizontal_whitespace() step by step: true for the code points on
// which it reaches TOML_UNREACHABLE.
constexpr bool whitespace_hazard(char32_t c) {
  if (c < 0xA0 || c > 0xFEFF) {
    return false;
  }
  const auto child = (static_cast<std::uint64_t>(c) - 0xA0) / 0x3FA;
  if (((1ull << child) & 0x7FFFFFFFFFFFF75Eull) != 0 || c == 0xA0 || c == 0x3000 || c == 0xFEFF) {
    return false;
  }
  return child != 5 && child != 7;  // the children it answers for
}
static_assert(whitespace_hazard(0xE9) && whitespace_hazard(0xFEFD) && whitespace_hazard(0x3001));
static_assert(!whitespace_hazard(0xA0) && !whitespace_hazard(0x4E2D) && !whitespace_hazard(0x2000));

// The three runs of hazards and where each goes in the private-use area (all of it safe).
struct Run {
  char32_t first, last, to;
};
constexpr Run kRuns[] = {{0xA1, 0x499, 0xE000}, {0x2C8E, 0x3057, 0xE400}, {0xFB26, 0xFEFE, 0xE800}};
constexpr char32_t kPrivateFirst = 0xE000, kPrivateLast = 0xEBFF;
static_assert(!whitespace_hazard(kPrivateFirst) && !whitespace_hazard(kPrivateLast));

// One UTF-8 sequence at text[i]: its code point and length; a malformed one is its lead byte
// alone (toml++ refuses it as it reads it).
std::pair<char32_t, std::size_t> decode(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const std::size_t left = text.size() - i;
  const auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  const unsigned char lead = b(0);
  if ((lead & 0xE0) == 0xC0 && cont(1)) {
    return {(char32_t{lead & 0x1Fu} << 6) | (b(1) & 0x3Fu), 2};
  }
  if ((lead & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    return {(char32_t{lead & 0x0Fu} << 12) | (char32_t{b(1) & 0x3Fu} << 6) | (b(2) & 0x3Fu), 3};
  }
  if ((lead & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    return {(char32_t{lead & 0x07u} << 18) | (char32_t{b(1) & 0x3Fu} << 12) |
                (char32_t{b(2) & 0x3Fu} << 6) | (b(3) & 0x3Fu),
            4};
  }
  return {lead, 1};
}

void encode(char32_t c, std::string& out) {
  if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
  } else {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
  }
  out += static_cast<char>(0x80 | (c & 0x3F));
}

// Every code point of `text` through `map` into `out` (ASCII and malformed bytes copied as they
// are); false, `out` untouched, when nothing changed.
template <typename Map>
bool remap(std::string_view text, std::string& out, Map map) {
  std::string r;
  r.reserve(text.size());
  bool changed = false;
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      r += text[i++];
      continue;
    }
    auto [c, n] = decode(text, i);
    if (const char32_t to = map(c); to != c) {
      encode(to, r);
      changed = true;
    } else {
      r.append(text.substr(i, n));
    }
    i += n;
  }
  if (changed) {
    out = std::move(r);
  }
  return changed;
}

char32_t to_private(char32_t c) {
  for (const Run& r : kRuns) {
    if (c >= r.first && c <= r.last && whitespace_hazard(c)) {
      return r.to + (c - r.first);
    }
  }
  return c;
}

char32_t from_private(char32_t c) {
  for (const Run& r : kRuns) {
    if (c >= r.to && c <= r.to + (r.last - r.first)) {
      return r.first + (c - r.to);
    }
  }
  return c;
}

void put_back(toml::node& n) {
  if (auto* t = n.as_table()) {
    for (auto&& [k, v] : *t) {
      put_back(v);
    }
  } else if (auto* a = n.as_array()) {
    for (auto& v : *a) {
      put_back(v);
    }
  } else if (auto* s = n.as_string()) {
    std::string out;
    if (remap(s->get(), out, from_private)) {
      s->get() = std::move(out);
    }
  }
}

}  // namespace

platform::Result<toml::table> parse_toml(std::string_view text, const std::string& origin) {
  if (auto ok = refuse_toml_hazards(text, origin); !ok) {
    return tl::unexpected(ok.error());
  }
  std::size_t line = 1;
  for (std::size_t i = 0; i < text.size();) {
    line += text[i] == '\n';
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    auto [c, n] = decode(text, i);
    if (c >= kPrivateFirst && c <= kPrivateLast) {
      return platform::fail(std::errc::invalid_argument,
                            origin + ":" + std::to_string(line) +
                                ": private-use characters U+E000-U+EBFF are refused");
    }
    i += n;
  }
  std::string safe;
  const bool mapped = remap(text, safe, to_private);
  toml::table root;
  try {
    root = toml::parse(mapped ? std::string_view(safe) : text, origin);
  } catch (const toml::parse_error& e) {
    return platform::fail(
        std::errc::invalid_argument,
        origin + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  if (mapped) {
    put_back(root);
  }
  return root;
}

}  // namespace gridnode::agent
