#include "toml_guard.hpp"

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
    return last == '\n' || last == '=' || last == '[' || last == ',' || last == '{' ||
           last == '.';
  };
  auto fail_at = [&](const char* what) {
    return platform::fail(std::errc::invalid_argument,
                          origin + ":" + std::to_string(line) + ": " + what);
  };
  auto is_key_start = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '"' || c == '\'';
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
