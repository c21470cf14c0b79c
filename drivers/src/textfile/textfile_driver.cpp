#include "gridnode/drivers/textfile.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "textfile/prom_text.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "textfile";

// node_exporter 1.5.0's names and HELP texts, verbatim (collector/textfile.go).
Family mtime_family() {
  return {"node_textfile_mtime_seconds",
          "Unixtime mtime of textfiles successfully read.",
          MetricType::gauge,
          {1, 0},
          "s"};
}
Family scrape_error_family() {
  return {"node_textfile_scrape_error",
          "1 if there was an error opening or reading a file, 0 otherwise",
          MetricType::gauge,
          {1, 0},
          ""};
}

// What says whether a file (or the directory) changed since it was read.
struct Stamp {
  bool ok = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  timespec ctime{};

  static Stamp of(const std::string& path) {
    struct stat st {};
    Stamp s;
    if (::stat(path.c_str(), &st) != 0) {
      return s;
    }
    s.ok = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime = st.st_mtim;
    s.ctime = st.st_ctim;
    return s;
  }
  friend bool operator==(const Stamp& a, const Stamp& b) {
    auto same = [](timespec x, timespec y) {
      return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec;
    };
    return a.ok == b.ok && a.dev == b.dev && a.ino == b.ino && a.size == b.size &&
           same(a.mtime, b.mtime) && same(a.ctime, b.ctime);
  }
};

struct Watched {
  std::string path;
  Stamp stamp;
};

// The scale exponent closest to the written values that still holds every sample of a family
// in 64 bits, within what format_value can write (64 characters).
constexpr std::int32_t kMinExp = -60;
constexpr std::int32_t kMaxExp = 40;

// 10^n for n in [0, 19].
std::uint64_t pow10(std::int32_t n) {
  std::uint64_t p = 1;
  for (std::int32_t i = 0; i < n; ++i) {
    p *= 10;
  }
  return p;
}

// How many decimal places `magnitude` can be shifted left and stay at or below `limit`.
std::int32_t headroom(std::uint64_t magnitude, std::uint64_t limit) {
  std::int32_t n = 0;
  while (magnitude != 0 && magnitude <= limit / 10) {
    magnitude *= 10;
    ++n;
  }
  return magnitude == 0 ? 19 : n;
}

std::uint64_t limit_of(const textfile::Decimal& d) {
  return d.negative ? std::uint64_t{1} << 63 : std::numeric_limits<std::uint64_t>::max();
}

std::int32_t family_exponent(const std::vector<textfile::TextSample>& samples) {
  std::int32_t lowest = kMaxExp;
  std::int32_t needed = kMinExp;
  for (const auto& s : samples) {
    if (s.value.kind != textfile::Decimal::Kind::finite || s.value.magnitude == 0) {
      continue;
    }
    lowest = std::min(lowest, s.value.exp10);
    needed = std::max(needed, s.value.exp10 - headroom(s.value.magnitude, limit_of(s.value)));
  }
  return std::clamp(std::max(lowest, needed), kMinExp, kMaxExp);
}

// The sample as an integer at exponent `e`, rounded where it had finer digits than the family
// can hold; nullopt when it does not fit at all.
std::optional<Value> at_exponent(const textfile::Decimal& d, std::int32_t e) {
  std::uint64_t v = 0;
  if (d.magnitude == 0) {
    v = 0;
  } else if (d.exp10 >= e) {
    std::int32_t shift = d.exp10 - e;
    if (shift > headroom(d.magnitude, limit_of(d))) {
      return std::nullopt;
    }
    v = d.magnitude * pow10(shift);
  } else {
    std::int32_t shift = e - d.exp10;
    if (shift > 19) {
      v = 0;
    } else {
      std::uint64_t p = pow10(shift);
      v = d.magnitude / p + (d.magnitude % p >= (p + 1) / 2 ? 1 : 0);
    }
  }
  if (!d.negative || v == 0) {
    return Value::of_unsigned(v);
  }
  return Value::of_signed(v == (std::uint64_t{1} << 63) ? std::numeric_limits<std::int64_t>::min()
                                                        : -static_cast<std::int64_t>(v));
}

bool reserved(std::string_view name) {
  return name.starts_with("gridnode_") || name.starts_with("node_textfile_");
}

// One family as the files give it, before it becomes the catalog's.
struct Merged {
  textfile::TextFamily family;
  std::vector<std::string> files;  // for node_exporter's "Metric read from ..." HELP
  std::set<std::string> series;    // label signatures, to refuse a series two files give
};

std::string signature(const Labels& labels) {
  std::string sig;
  for (const auto& [k, v] : labels) {
    sig.append(k).push_back('\0');
    sig.append(v).push_back('\0');
  }
  return sig;
}

class TextfileDriver final : public Driver {
 public:
  explicit TextfileDriver(TextfileOptions options) : options_(std::move(options)) {
    dir_ = options_.directory;
    while (dir_.size() > 1 && dir_.back() == '/') {
      dir_.pop_back();  // filepath.Join's cleaning, for the {file} label
    }
  }

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    if (dir_.empty()) {
      return platform::fail(std::errc::no_such_file_or_directory,
                            "textfile: no directory configured");
    }
    if (!catalog_ || changed()) {
      rescan();
    }
    out.catalog = catalog_;
    for (const auto& r : readings_) {
      out.readings.push_back(r);
    }
    out.errors += dropped_;
    return {};
  }

 private:
  bool changed() const {
    if (!(Stamp::of(dir_) == dir_stamp_)) {
      return true;
    }
    return std::any_of(watched_.begin(), watched_.end(),
                       [](const Watched& w) { return !(Stamp::of(w.path) == w.stamp); });
  }

  void rescan() {
    dir_stamp_ = Stamp::of(dir_);
    watched_.clear();
    bool errored = false;
    std::vector<Merged> merged;
    std::map<std::string, std::size_t> index;
    std::vector<std::pair<std::string, std::int64_t>> mtimes;
    std::set<std::string> bad_now;

    auto names = platform::list_dir(dir_);
    if (!names) {
      errored = true;
      if (dir_complaint_.complain()) {
        platform::log(platform::Level::warning, kComponent,
                      platform::LogLine("directory unreadable")
                          .kv("path", dir_)
                          .kv("err", names.error().code.message()));
      }
    } else {
      if (dir_complaint_.release()) {
        platform::log(platform::Level::notice, kComponent,
                      platform::LogLine("directory readable again").kv("path", dir_));
      }
      for (const auto& name : *names) {
        if (!name.ends_with(".prom")) {
          continue;
        }
        std::string path = dir_ + "/" + name;
        Stamp stamp = Stamp::of(path);
        watched_.push_back(Watched{path, stamp});
        auto why = add_file(path, merged, index);
        if (!why.empty()) {
          errored = true;
          bad_now.insert(path);
          if (bad_.count(path) == 0 || !(bad_stamps_[path] == stamp)) {
            platform::log(platform::Level::warning, kComponent,
                          platform::LogLine("file skipped").kv("file", path).kv("err", why));
          }
          bad_stamps_[path] = stamp;
          continue;
        }
        // node_exporter: float64(mtime.UnixNano() / 1e9), whole seconds.
        mtimes.emplace_back(path, static_cast<std::int64_t>(stamp.mtime.tv_sec));
      }
    }
    for (const auto& path : bad_) {
      if (bad_now.count(path) == 0) {
        bad_stamps_.erase(path);
        platform::log(platform::Level::notice, kComponent,
                      platform::LogLine("file read again").kv("file", path));
      }
    }
    bad_ = std::move(bad_now);
    publish(merged, mtimes, errored);
  }

  // Reads, parses and merges one file; the reason it was refused, or "" when it was taken.
  // A refused file leaves `merged` as it was.
  std::string add_file(const std::string& path, std::vector<Merged>& merged,
                       std::map<std::string, std::size_t>& index) {
    auto read = platform::read_file(path, text_, options_.max_file_bytes);
    if (!read) {
      return read.error().code == std::errc::file_too_large
                 ? "larger than " + std::to_string(options_.max_file_bytes) + " bytes"
                 : read.error().code.message();
    }
    auto families = textfile::parse_prom_text(text_);
    if (!families) {
      return families.error().context;
    }
    for (const auto& f : *families) {
      if (reserved(f.name)) {
        return "family \"" + f.name + "\" is in the agent's own namespace";
      }
      auto it = index.find(f.name);
      if (it == index.end()) {
        continue;
      }
      const Merged& m = merged[it->second];
      if (m.family.type != f.type || m.family.origin != f.origin) {
        return "family \"" + f.name + "\" has another type in " + m.files.front();
      }
      for (const auto& s : f.samples) {
        if (m.series.count(signature(s.labels)) != 0) {
          return "a series of \"" + f.name + "\" is also in " + m.files.front();
        }
      }
    }
    for (auto& f : *families) {
      auto [it, fresh] = index.emplace(f.name, merged.size());
      if (fresh) {
        Merged& m = merged.emplace_back();
        m.family.name = f.name;
        m.family.help = f.help;
        m.family.has_help = f.has_help;
        m.family.origin = f.origin;
        m.family.type = f.type;
      }
      Merged& m = merged[it->second];
      if (!m.family.has_help && f.has_help) {
        m.family.help = f.help;  // the first HELP given wins, as in node_exporter's registry
        m.family.has_help = true;
      }
      m.files.push_back(path);
      for (auto& s : f.samples) {
        m.series.insert(signature(s.labels));
        m.family.samples.push_back(std::move(s));
      }
    }
    return {};
  }

  void publish(std::vector<Merged>& merged,
               const std::vector<std::pair<std::string, std::int64_t>>& mtimes, bool errored) {
    Catalog catalog;
    readings_.clear();
    dropped_ = 0;
    for (auto& m : merged) {
      Family family;
      family.name = m.family.name;
      if (m.family.has_help) {
        family.help = m.family.help;
      } else {
        family.help = "Metric read from ";
        for (std::size_t i = 0; i < m.files.size(); ++i) {
          family.help += (i == 0 ? "" : ", ") + m.files[i];
        }
      }
      family.type = m.family.type;
      std::int32_t e = family_exponent(m.family.samples);
      family.scale = {1, static_cast<std::int8_t>(e)};
      auto f = catalog.add_family(std::move(family));
      for (auto& s : m.family.samples) {
        auto value = s.value.kind == textfile::Decimal::Kind::finite ? at_exponent(s.value, e)
                                                                     : std::nullopt;
        if (!value) {
          ++dropped_;  // NaN, ±Inf, or beyond what the family's scale holds
          continue;
        }
        readings_.push_back(Reading{catalog.add_series(f, std::move(s.labels)), *value});
      }
    }
    if (!mtimes.empty()) {
      auto f = catalog.add_family(mtime_family());
      for (const auto& [path, seconds] : mtimes) {
        readings_.push_back(
            Reading{catalog.add_series(f, {{"file", path}}), Value::of_signed(seconds)});
      }
    }
    auto f = catalog.add_family(scrape_error_family());
    readings_.push_back(Reading{catalog.add_series(f, {}), Value::of_unsigned(errored ? 1 : 0)});
    if (!catalog_ || *catalog_ != catalog) {
      catalog_ = std::make_shared<const Catalog>(std::move(catalog));
    }
  }

  TextfileOptions options_;
  std::string dir_;
  Stamp dir_stamp_;
  std::vector<Watched> watched_;
  std::string text_;
  std::shared_ptr<const Catalog> catalog_;
  std::vector<Reading> readings_;
  std::uint64_t dropped_ = 0;
  platform::Complaint dir_complaint_;
  std::set<std::string> bad_;
  std::map<std::string, Stamp> bad_stamps_;
};

}  // namespace

std::unique_ptr<Driver> make_textfile_driver(TextfileOptions options) {
  return std::make_unique<TextfileDriver>(std::move(options));
}

}  // namespace gridnode::drivers
