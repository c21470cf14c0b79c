#pragma once

// Helpers for the crypto tests: run the real `openssl` command, read and write files, base64.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace gridnode::crypto::test {

struct CommandResult {
  int status = -1;     // exit status, -1 if it did not exit normally
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  std::string full = command + " 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) {
    return result;
  }
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
    result.output.append(buf, n);
  }
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Single-quoted for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

inline bool have_openssl() {
  static const bool have = run_command("openssl version").status == 0;
  return have;
}

#define GRIDNODE_REQUIRE_OPENSSL()                            \
  do {                                                        \
    if (!::gridnode::crypto::test::have_openssl()) {          \
      GTEST_SKIP() << "the openssl command is not installed"; \
    }                                                         \
  } while (0)

// Runs `openssl <args>` and fails the test (with its output) unless it exits 0.
inline std::string openssl(const std::string& args) {
  CommandResult r = run_command("openssl " + args);
  EXPECT_EQ(r.status, 0) << "openssl " << args << "\n" << r.output;
  return r.output;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::string s = read_text(path);
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

inline void write_text(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& data) {
  write_text(path, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

// The body of the first PEM block, base64-decoded (enough for the tests' tampering).
inline std::vector<std::uint8_t> pem_body(const std::string& pem) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto begin = pem.find('\n', pem.find("-----BEGIN")) + 1;
  auto end = pem.find("-----END");
  std::vector<std::uint8_t> out;
  unsigned acc = 0;
  int bits = 0;
  for (std::size_t i = begin; i < end; ++i) {
    auto v = kAlphabet.find(pem[i]);
    if (v == std::string_view::npos) {
      continue;  // newlines and '=' padding
    }
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  return out;
}

inline std::string to_pem(const std::string& label, const std::vector<std::uint8_t>& der) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  for (std::size_t i = 0; i < der.size(); i += 3) {
    unsigned v = static_cast<unsigned>(der[i]) << 16;
    if (i + 1 < der.size()) {
      v |= static_cast<unsigned>(der[i + 1]) << 8;
    }
    if (i + 2 < der.size()) {
      v |= der[i + 2];
    }
    b64 += kAlphabet[(v >> 18) & 63];
    b64 += kAlphabet[(v >> 12) & 63];
    b64 += i + 1 < der.size() ? kAlphabet[(v >> 6) & 63] : '=';
    b64 += i + 2 < der.size() ? kAlphabet[v & 63] : '=';
  }
  std::string out = "-----BEGIN " + label + "-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) {
    out += b64.substr(i, 64) + "\n";
  }
  return out + "-----END " + label + "-----\n";
}

}  // namespace gridnode::crypto::test
