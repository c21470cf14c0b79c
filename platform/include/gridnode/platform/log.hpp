#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gridnode::platform {

// syslog priorities, as sd-daemon's SD_ERR … SD_DEBUG.
enum class Level : std::uint8_t { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// One event, one line on stderr: "component: what happened key=value key=\"with space\"".
// When stderr is the journal (JOURNAL_STREAM names it) the line starts with "<N>" so that
// `journalctl -p warning` works without libsystemd; on a terminal the level is a word.
// Thread-safe: each line is written with a single write(2).
class Log {
 public:
  // Lines below `threshold` are dropped (cheaply: check enabled() before formatting).
  static void set_threshold(Level threshold);
  static bool enabled(Level level);
  static void write(Level level, std::string_view component, std::string_view message);
  // Detects whether stderr is the journal; called once at start and by tests.
  static void detect_sink();
};

// Builds the key=value tail of a log line, quoting values that hold spaces or quotes.
class LogLine {
 public:
  LogLine(std::string_view message) : text_(message) {}  // NOLINT: implicit on purpose
  LogLine& kv(std::string_view key, std::string_view value);
  LogLine& kv(std::string_view key, std::int64_t value);
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

inline void log(Level level, std::string_view component, const LogLine& line) {
  if (Log::enabled(level)) {
    Log::write(level, component, line.str());
  }
}

// Logs a repeating problem once and once more when it clears (collectd's c_complain /
// c_release), so a sick host's log stays readable. Not thread-safe: one owner.
class Complaint {
 public:
  // Returns true the first time after construction or release(): log then.
  bool complain() {
    bool first = !active_;
    active_ = true;
    return first;
  }
  // Returns true when a complaint was active: log "recovered" then.
  bool release() {
    bool was = active_;
    active_ = false;
    return was;
  }
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

}  // namespace gridnode::platform
