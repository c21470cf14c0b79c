#include "gridnode/platform/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace gridnode::platform {
namespace {

std::atomic<int> g_threshold{static_cast<int>(Level::info)};
std::atomic<bool> g_journal{false};

std::string_view level_word(Level level) {
  switch (level) {
    case Level::err:
      return "error";
    case Level::warning:
      return "warning";
    case Level::notice:
      return "notice";
    case Level::info:
      return "info";
    case Level::debug:
      return "debug";
  }
  return "?";
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) {
    return true;
  }
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

}  // namespace

void Log::set_threshold(Level threshold) { g_threshold = static_cast<int>(threshold); }

bool Log::enabled(Level level) { return static_cast<int>(level) <= g_threshold.load(); }

void Log::detect_sink() {
  // JOURNAL_STREAM is "device:inode" of the journal's socket; it only counts when stderr is
  // still that socket (a child with redirected stderr inherits the variable).
  const char* js = std::getenv("JOURNAL_STREAM");
  bool journal = false;
  struct stat st {};
  if (js != nullptr && ::fstat(STDERR_FILENO, &st) == 0) {
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) == 2) {
      journal = dev == static_cast<unsigned long long>(st.st_dev) &&
                ino == static_cast<unsigned long long>(st.st_ino);
    }
  }
  g_journal = journal;
}

void Log::write(Level level, std::string_view component, std::string_view message) {
  std::string line;
  line.reserve(component.size() + message.size() + 16);
  if (g_journal) {
    line += '<';
    line += static_cast<char>('0' + static_cast<int>(level));
    line += '>';
  } else {
    line += level_word(level);
    line += ' ';
  }
  line += component;
  line += ": ";
  line += message;
  line += '\n';
  // One write(2) per line so that lines from the worker thread do not interleave.
  std::size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) {
      break;
    }
    off += static_cast<std::size_t>(n);
  }
}

LogLine& LogLine::kv(std::string_view key, std::string_view value) {
  text_ += ' ';
  text_ += key;
  text_ += '=';
  if (!needs_quotes(value)) {
    text_ += value;
    return *this;
  }
  text_ += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') {
      text_ += '\\';
      text_ += c;
    } else if (c == '\n') {
      text_ += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      text_ += '?';
    } else {
      text_ += c;
    }
  }
  text_ += '"';
  return *this;
}

LogLine& LogLine::kv(std::string_view key, std::int64_t value) {
  return kv(key, std::string_view(std::to_string(value)));
}

}  // namespace gridnode::platform
