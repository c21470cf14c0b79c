// Integrity watching: the files that must stay unchanged ([integrity]), hashed on the
// engine's hashing worker within a bandwidth cap, re-checked when inotify says they changed.
#include "gridnode/agent/policy_engine.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "gridnode/agent/policy_bundle.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/peer.hpp"
#include "policy_text.hpp"
#include "rule_parser.hpp"

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;
using platform::Result;
using namespace policy_text;  // NOLINT: the policy's own helpers

Result<void> parse_integrity_section(const PolicyParser& p, const toml::node& node, PolicyDraft& draft) {
  const std::string section = "integrity";
  Policy& pol = draft.policy;
  Result<void> r;
  r = p.table(node, section, {"interval", "max_bytes_per_second", "severity", "watch"},
              [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                if (key == "interval") {
                  auto s = p.seconds(v, full, 1, 7 * 86400);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  pol.integrity.interval = *s;
                } else if (key == "max_bytes_per_second") {
                  auto n = p.integer(v, full, 4096, std::int64_t{1} << 40);
                  if (!n) {
                    return tl::unexpected(n.error());
                  }
                  pol.integrity.max_bytes_per_second = static_cast<std::uint64_t>(*n);
                } else if (key == "severity") {
                  auto s = p.severity(v, full);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  pol.integrity.severity = *s;
                } else {
                  const auto* arr = v.as_array();
                  if (arr == nullptr) {
                    return tl::unexpected(p.bad(v, full, "must be an array of tables ([[integrity.watch]])"));
                  }
                  for (const auto& item : *arr) {
                    IntegrityWatch w;
                    auto t = p.table(item, full, {"path", "sha256", "manifest"},
                                     [&](std::string_view wk, const toml::node& wv, const std::string& f) -> Result<void> {
                                       auto s = p.string(wv, f);
                                       if (!s) {
                                         return tl::unexpected(s.error());
                                       }
                                       if (wk == "sha256") {
                                         auto d = crypto::digest_from_hex(*s);
                                         if (!d) {
                                           return tl::unexpected(p.bad(wv, f, "must be 64 hex digits"));
                                         }
                                         w.sha256 = *d;
                                       } else if (s->front() != '/') {
                                         return tl::unexpected(p.bad(wv, f, "must be an absolute path"));
                                       } else {
                                         (wk == "path" ? w.path : w.manifest) = *s;
                                       }
                                       return {};
                                     });
                    if (!t) {
                      return t;
                    }
                    if (w.path.empty()) {
                      return tl::unexpected(p.bad(item, full, "needs a path"));
                    }
                    if (w.sha256 && !w.manifest.empty()) {
                      return tl::unexpected(p.bad(item, full, "takes sha256 or manifest, not both"));
                    }
                    pol.integrity.watch.push_back(std::move(w));
                  }
                }
                return {};
              });
  return r;
}

void integrity_to_json(const Policy& policy, nlohmann::json& rules) {
  if (!policy.integrity.watch.empty()) {
    nlohmann::json w = nlohmann::json::array();
    for (const auto& x : policy.integrity.watch) {
      nlohmann::json e = {{"path", x.path}};
      if (x.sha256) {
        e["sha256"] = crypto::to_hex(*x.sha256);
      }
      if (!x.manifest.empty()) {
        e["manifest"] = x.manifest;
      }
      w.push_back(std::move(e));
    }
    rules.push_back({{"rule", "integrity"},
                     {"type", "integrity"},
                     {"watch", w},
                     {"interval_seconds", seconds_of(policy.integrity.interval)},
                     {"max_bytes_per_second", policy.integrity.max_bytes_per_second},
                     {"severity", to_string(policy.integrity.severity)},
                     {"action", "report"}});
  }
}

platform::Result<crypto::Digest> hash_file(const std::string& path,
                                           std::uint64_t max_bytes_per_second,
                                           const std::atomic<bool>& cancel, std::uint64_t* bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return platform::fail_errno(errno, path);
  }
  // A 100 GB model read once for its digest must not push the host's working set out of the
  // page cache: read sequentially and drop what was read.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  crypto::Sha256 sha;
  std::vector<std::uint8_t> buf(1 << 20);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t total = 0;
  for (;;) {
    if (cancel.load(std::memory_order_relaxed)) {
      ::close(fd);
      return platform::fail(std::errc::operation_canceled, path);
    }
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      ::close(fd);
      return platform::fail_errno(err, path);
    }
    if (n == 0) {
      break;
    }
    sha.update(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    ::posix_fadvise(fd, static_cast<off_t>(total), n, POSIX_FADV_DONTNEED);
    total += static_cast<std::uint64_t>(n);
    if (bytes != nullptr) {
      *bytes += static_cast<std::uint64_t>(n);
    }
    if (max_bytes_per_second > 0) {
      // The cap: never ahead of `total / max` seconds since the start.
      auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                             static_cast<double>(total) * 1e9 / static_cast<double>(max_bytes_per_second)));
      while (std::chrono::steady_clock::now() < due && !cancel.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
            due - std::chrono::steady_clock::now(), std::chrono::milliseconds(100)));
      }
    }
  }
  ::close(fd);
  return sha.finish();
}

platform::Result<std::map<std::string, crypto::Digest>> parse_manifest(std::string_view text,
                                                                       const std::string& origin) {
  std::map<std::string, crypto::Digest> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    std::string_view line = next_line(text);
    ++line_no;
    if (platform::trim(line).empty() || line.front() == '#') {
      continue;
    }
    auto bad = [&](const char* what) {
      return platform::fail(std::errc::invalid_argument,
                            origin + ":" + std::to_string(line_no) + ": " + what);
    };
    if (line.size() < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) {
      return bad("expected \"<sha256>  <name>\"");
    }
    auto d = crypto::digest_from_hex(line.substr(0, 64));
    if (!d) {
      return bad("not a SHA-256 digest");
    }
    std::string name(line.substr(66));
    if (name.starts_with("./")) {
      name = name.substr(2);
    }
    if (name.empty() || name.front() == '/' || name.find("..") != std::string::npos) {
      return bad("the name must be relative, without ..");
    }
    out[name] = *d;
  }
  return out;
}

void IntegrityChecker::set_status(Known& k, const std::string& path, std::string status,
                                  std::string details, std::vector<IntegrityFinding>& out) {
  if (k.status == status) {
    return;  // told already
  }
  bool was_bad = k.status != "ok";
  k.status = status;
  if (status == "ok") {
    if (was_bad) {
      out.push_back({path, "restored", "matches its expected digest again"});
    }
    return;
  }
  out.push_back({path, std::move(status), std::move(details)});
}

void IntegrityChecker::load_expectations(std::vector<IntegrityFinding>& out) {
  if (loaded_) {
    return;
  }
  loaded_ = true;
  for (const auto& w : rule_.watch) {
    if (w.sha256) {
      Known& k = known_[w.path];
      k.expected = w.sha256;
      k.from_policy = true;
    } else if (!w.manifest.empty()) {
      std::string text;
      auto r = platform::read_file(w.manifest, text, 16 << 20);
      auto m = r ? parse_manifest(text, w.manifest)
                 : platform::Result<std::map<std::string, crypto::Digest>>(tl::unexpected(r.error()));
      if (!m) {
        out.push_back({w.manifest, "unreadable", "manifest: " + m.error().message()});
        continue;
      }
      for (const auto& [name, d] : *m) {
        Known& k = known_[platform::Roots::join(w.path, name)];
        k.expected = d;
        k.from_policy = true;
      }
    }
  }
}

void IntegrityChecker::check_file(const IntegrityWatch& w, const std::string& path,
                                  bool baselined, const std::atomic<bool>& cancel,
                                  std::vector<IntegrityFinding>& out) {
  ++files_;
  struct stat st {};
  const bool is_new = !known_.contains(path);
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    if (!is_new) {
      set_status(known_[path], path, "missing", "is gone (or no longer a regular file)", out);
    }
    return;
  }
  Known& k = known_[path];
  if (is_new && (baselined || !w.manifest.empty()) && path != w.path) {
    // In a watched directory, not in its manifest, or appeared after the baseline.
    set_status(k, path, "new", w.manifest.empty() ? "appeared after the baseline"
                                                  : "is not in the manifest " + w.manifest,
               out);
  }
  auto d = hash_file(path, rule_.max_bytes_per_second, cancel, &bytes_);
  if (!d) {
    if (d.error().code != std::errc::operation_canceled) {
      set_status(k, path, "unreadable", d.error().message(), out);
    }
    return;
  }
  if (!k.have_meta) {
    k.have_meta = true;
    k.mode = st.st_mode & 07777;
    k.uid = st.st_uid;
    k.gid = st.st_gid;
  }
  if (!k.expected) {
    k.expected = *d;  // baseline (trust on first use)
  }
  if (*k.expected != *d) {
    set_status(k, path, "mismatch",
               "SHA-256 " + crypto::to_hex(*d) + ", expected " + crypto::to_hex(*k.expected), out);
    return;
  }
  if ((st.st_mode & 07777) != k.mode || st.st_uid != k.uid || st.st_gid != k.gid) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "mode %04o owner %u:%u, was %04o %u:%u", st.st_mode & 07777,
                  st.st_uid, st.st_gid, k.mode, k.uid, k.gid);
    set_status(k, path, "permissions", buf, out);
    return;
  }
  if (k.status == "new") {
    return;  // stays reported as new until the policy changes
  }
  set_status(k, path, "ok", "", out);
}

void IntegrityChecker::check_watch(std::size_t index, const std::atomic<bool>& cancel,
                                   std::vector<IntegrityFinding>& out) {
  const IntegrityWatch& w = rule_.watch[index];
  const bool baselined = baselined_.contains(index);
  std::error_code ec;
  auto status = std::filesystem::symlink_status(w.path, ec);
  if (ec || !std::filesystem::is_directory(status)) {
    known_[w.path];  // a file watch: it must exist from the start
    check_file(w, w.path, baselined, cancel, out);
    baselined_.insert(index);
    return;
  }
  std::set<std::string> seen;
  for (auto it = std::filesystem::recursive_directory_iterator(
           w.path, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (cancel.load(std::memory_order_relaxed)) {
      return;
    }
    std::error_code fe;
    if (!it->is_regular_file(fe) || it->is_symlink(fe)) {
      continue;
    }
    std::string path = it->path().string();
    if (path == w.manifest) {
      continue;
    }
    seen.insert(path);
    check_file(w, path, baselined, cancel, out);
  }
  // What the manifest or the baseline knows and the directory no longer has.
  const std::string prefix = w.path.ends_with('/') ? w.path : w.path + "/";
  for (auto& [path, k] : known_) {
    if (path.starts_with(prefix) && !seen.contains(path)) {
      set_status(k, path, "missing", "is gone", out);
    }
  }
  baselined_.insert(index);
}

std::vector<IntegrityFinding> IntegrityChecker::check_all(const std::atomic<bool>& cancel) {
  std::vector<IntegrityFinding> out;
  load_expectations(out);
  for (std::size_t i = 0; i < rule_.watch.size() && !cancel.load(); ++i) {
    check_watch(i, cancel, out);
  }
  return out;
}

std::vector<IntegrityFinding> IntegrityChecker::check_paths(const std::set<std::string>& paths,
                                                            const std::atomic<bool>& cancel) {
  std::vector<IntegrityFinding> out;
  load_expectations(out);
  for (const auto& path : paths) {
    for (std::size_t i = 0; i < rule_.watch.size(); ++i) {
      const IntegrityWatch& w = rule_.watch[i];
      const std::string prefix = w.path.ends_with('/') ? w.path : w.path + "/";
      if (path != w.path && !path.starts_with(prefix)) {
        continue;
      }
      if (!baselined_.contains(i) || path == w.manifest) {
        break;  // the first full pass takes the baseline
      }
      check_file(w, path, true, cancel, out);
      break;
    }
  }
  return out;
}

std::vector<std::string> IntegrityChecker::watch_dirs() const {
  std::set<std::string> dirs;
  for (const auto& w : rule_.watch) {
    std::error_code ec;
    if (std::filesystem::is_directory(std::filesystem::symlink_status(w.path, ec))) {
      dirs.insert(w.path);
      for (auto it = std::filesystem::recursive_directory_iterator(
               w.path, std::filesystem::directory_options::skip_permission_denied, ec);
           !ec && it != std::filesystem::recursive_directory_iterator() && dirs.size() < 4096;
           it.increment(ec)) {
        std::error_code fe;
        if (it->is_directory(fe) && !it->is_symlink(fe)) {
          dirs.insert(it->path().string());
        }
      }
    } else {
      dirs.insert(std::filesystem::path(w.path).parent_path().string());
    }
  }
  return {dirs.begin(), dirs.end()};
}

void PolicyEngine::do_integrity_full() {
  if (!checker_) {
    return;
  }
  if (hashing_) {
    full_wanted_ = true;
    return;
  }
  hashing_ = true;
  full_wanted_ = false;
  cancel_ = false;
  asio::post(hash_pool_, [this, checker = checker_, gen = generation_] {
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t before = checker->bytes_hashed();
    auto findings = checker->check_all(cancel_);
    auto bytes = checker->bytes_hashed() - before;
    auto took = std::chrono::steady_clock::now() - t0;
    asio::post(io_, [this, gen, findings = std::move(findings), bytes, took]() mutable {
      on_integrity(gen, std::move(findings), bytes, took);
    });
  });
}

void PolicyEngine::do_integrity_paths() {
  if (!checker_ || changed_paths_.empty()) {
    return;
  }
  if (hashing_) {
    return;  // picked up when the pass in progress ends
  }
  hashing_ = true;
  cancel_ = false;
  std::set<std::string> paths;
  paths.swap(changed_paths_);
  asio::post(hash_pool_, [this, checker = checker_, gen = generation_, paths = std::move(paths)] {
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t before = checker->bytes_hashed();
    auto findings = checker->check_paths(paths, cancel_);
    auto bytes = checker->bytes_hashed() - before;
    auto took = std::chrono::steady_clock::now() - t0;
    asio::post(io_, [this, gen, findings = std::move(findings), bytes, took]() mutable {
      on_integrity(gen, std::move(findings), bytes, took);
    });
  });
}

void PolicyEngine::on_integrity(std::uint64_t generation, std::vector<IntegrityFinding> findings,
                                std::uint64_t bytes, std::chrono::nanoseconds took) {
  hashing_ = false;
  bytes_hashed_ += bytes;
  last_pass_ = took;
  if (generation == generation_ && !stopped_) {
    for (auto& f : findings) {
      PolicyEvent e;
      e.rule = "integrity";
      e.type = "integrity";
      e.severity = f.restored() ? Severity::info : policy_.integrity.severity;
      e.subject = f.path;
      e.details = f.what + ": " + f.details;
      raise(std::move(e));
    }
  }
  if (stopped_) {
    return;
  }
  if (full_wanted_) {
    do_integrity_full();
  } else if (!changed_paths_.empty()) {
    do_integrity_paths();
  }
}

void PolicyEngine::start_inotify() {
  if (inotify_) {
    std::error_code ignored;
    inotify_->close(ignored);
    inotify_.reset();
  }
  watch_dirs_.clear();
  if (!checker_) {
    return;
  }
  // Walking the watched trees is blocking I/O: on the worker; the watches are added there too
  // and the descriptor comes back to the loop.
  asio::post(work_pool_, [this, gen = generation_, checker = checker_] {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int err = errno;
    std::map<int, std::string> dirs;
    if (fd >= 0) {
      for (const auto& dir : checker->watch_dirs()) {
        int wd = ::inotify_add_watch(fd, dir.c_str(),
                                     IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                         IN_DELETE | IN_ATTRIB | IN_DONT_FOLLOW);
        if (wd >= 0) {
          dirs[wd] = dir;
        }
      }
    }
    asio::post(io_, [this, gen, fd, err, dirs = std::move(dirs)]() mutable {
      if (fd < 0) {
        platform::log(Level::warning, "policy",
                      LogLine("integrity: no inotify, periodic checks only")
                          .kv("err", std::error_code(err, std::generic_category()).message()));
        return;
      }
      if (gen != generation_ || stopped_) {
        ::close(fd);  // a newer policy has its own
        return;
      }
      watch_dirs_ = std::move(dirs);
      inotify_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
      do_read_inotify();
    });
  });
}

void PolicyEngine::do_read_inotify() {
  inotify_->async_read_some(
      asio::buffer(inotify_buf_), [this](const std::error_code& ec, std::size_t n) {
        if (ec) {
          return;  // closed: stopping or a new policy
        }
        std::size_t at = 0;
        while (at + sizeof(inotify_event) <= n) {
          inotify_event ev;
          std::memcpy(&ev, inotify_buf_.data() + at, sizeof ev);
          std::string name(inotify_buf_.data() + at + sizeof ev,
                           strnlen(inotify_buf_.data() + at + sizeof ev, ev.len));
          at += sizeof ev + ev.len;
          auto it = watch_dirs_.find(ev.wd);
          if (it != watch_dirs_.end() && !name.empty()) {
            changed_paths_.insert(platform::Roots::join(it->second, name));
          }
        }
        if (!changed_paths_.empty() && !debounce_armed_) {
          // A copy of a large file writes many times: wait for the writes to settle.
          debounce_armed_ = true;
          debounce_timer_.expires_after(std::chrono::milliseconds(200));
          debounce_timer_.async_wait([this](const std::error_code& e) {
            debounce_armed_ = false;
            if (!e) {
              do_integrity_paths();
            }
          });
        }
        do_read_inotify();
      });
}

}  // namespace gridnode::agent
