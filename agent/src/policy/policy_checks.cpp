#include "gridnode/agent/policy_checks.hpp"

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

namespace gridnode::agent {
namespace {

std::string series_subject(const std::string& metric, const platform::Labels& labels) {
  std::string s = metric + "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    s += (i ? "," : "") + labels[i].first + "=\"" + labels[i].second + "\"";
  }
  return s + "}";
}

bool matches(const platform::Labels& have, const platform::Labels& want) {
  return std::all_of(want.begin(), want.end(), [&](const auto& w) {
    return std::find(have.begin(), have.end(), w) != have.end();
  });
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
      ++i;
    }
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') {
      ++j;
    }
    if (j > i) {
      out.push_back(line.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

// The next line of `text` (without its newline), which moves past it.
std::string_view next_line(std::string_view& text) {
  auto eol = text.find('\n');
  std::string_view line = text.substr(0, eol);
  text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
  return line;
}

bool hex_u32(std::string_view s, std::uint32_t& out) {
  if (s.empty() || s.size() > 8) {
    return false;
  }
  out = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) {
      return false;
    }
    out = out << 4 | static_cast<std::uint32_t>(d);
  }
  return true;
}

// "0100007F:1F90" (IPv4) or 32 hex digits (IPv6): the kernel prints each 32-bit word of the
// network-order address as a host-order integer, so each word's bytes come out reversed on
// little-endian hosts; memcpy of the parsed word undoes exactly that on the host that wrote it.
bool decode_endpoint(std::string_view text, bool v6, std::string& address, std::uint16_t& port) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  std::string_view a = text.substr(0, colon);
  std::uint32_t p = 0;
  if (!hex_u32(text.substr(colon + 1), p) || p > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(p);
  std::array<std::uint8_t, 16> bytes{};
  std::size_t words = v6 ? 4 : 1;
  if (a.size() != words * 8) {
    return false;
  }
  for (std::size_t w = 0; w < words; ++w) {
    std::uint32_t v = 0;
    if (!hex_u32(a.substr(w * 8, 8), v)) {
      return false;
    }
    std::memcpy(bytes.data() + w * 4, &v, 4);
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf) == nullptr) {
    return false;
  }
  address = buf;
  return true;
}

}  // namespace

// ---- limits

void LimitsEvaluator::set_rules(std::vector<LimitRule> rules,
                                std::vector<std::pair<LimitRule, LimitTransition>>* released) {
  std::vector<Bound> kept;  // the next rebind carries their state over by (rule, subject)
  for (Bound& b : bounds_) {
    const LimitRule& old = rules_[b.rule];
    if (auto it = std::find(rules.begin(), rules.end(), old); it != rules.end()) {
      b.rule = static_cast<std::size_t>(it - rules.begin());
      kept.push_back(std::move(b));
    } else if (b.firing && released != nullptr) {
      released->push_back({old, LimitTransition{0, false, b.subject, 0, b.labels}});
    }
  }
  rules_ = std::move(rules);
  bounds_ = std::move(kept);
  bound_ = false;  // rebind on the next evaluation
}

std::size_t LimitsEvaluator::firing() const {
  return static_cast<std::size_t>(
      std::count_if(bounds_.begin(), bounds_.end(), [](const Bound& b) { return b.firing; }));
}

void LimitsEvaluator::rebind(const std::vector<DriverSlot>& slots) {
  // States survive a rebind by subject: a catalog change must not re-fire what is firing.
  std::map<std::pair<std::size_t, std::string>, Bound> old;
  for (auto& b : bounds_) {
    old.emplace(std::pair{b.rule, b.subject}, std::move(b));
  }
  bounds_.clear();
  seen_.assign(slots.size(), nullptr);
  index_.assign(slots.size(), {});
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const platform::Catalog* c = slots[s].front.catalog.get();
    seen_[s] = c;
    if (c == nullptr) {
      continue;
    }
    index_[s].assign(c->series.size(), {0, 0});
    for (std::size_t i = 0; i < c->series.size(); ++i) {
      const platform::Series& series = c->series[i];
      const platform::Family& fam = c->families[series.family];
      auto first = static_cast<std::uint32_t>(bounds_.size());
      for (std::size_t r = 0; r < rules_.size(); ++r) {
        if (rules_[r].metric != fam.name || !matches(series.labels, rules_[r].match)) {
          continue;
        }
        Bound b;
        b.rule = r;
        b.scale = fam.scale;
        b.subject = series_subject(fam.name, series.labels);
        b.labels = series.labels;
        if (auto it = old.find({r, b.subject}); it != old.end()) {
          b.pending_since = it->second.pending_since;
          b.firing = it->second.firing;
        }
        bounds_.push_back(std::move(b));
      }
      index_[s][i] = {first, static_cast<std::uint32_t>(bounds_.size()) - first};
    }
  }
  bound_ = true;
}

void LimitsEvaluator::evaluate(const std::vector<DriverSlot>& slots,
                               std::chrono::steady_clock::time_point now,
                               std::vector<LimitTransition>& out) {
  if (rules_.empty()) {
    return;
  }
  bool same = bound_ && seen_.size() == slots.size();
  for (std::size_t s = 0; same && s < slots.size(); ++s) {
    same = seen_[s] == slots[s].front.catalog.get();
  }
  if (!same) {
    rebind(slots);
  }
  for (std::size_t s = 0; s < slots.size(); ++s) {
    if (slots[s].state != DriverState::up) {
      continue;  // stale values judge nothing
    }
    const auto& idx = index_[s];
    for (const auto& reading : slots[s].front.readings) {
      if (reading.series >= idx.size() || idx[reading.series].second == 0) {
        continue;
      }
      auto [first, n] = idx[reading.series];
      for (std::uint32_t k = first; k < first + n; ++k) {
        Bound& b = bounds_[k];
        const LimitRule& rule = rules_[b.rule];
        double v = platform::to_double(reading.value, b.scale);
        bool beyond = rule.above ? v > rule.threshold : v < rule.threshold;
        if (b.firing) {
          bool back = rule.above ? v <= rule.clear : v >= rule.clear;
          if (back) {
            b.firing = false;
            b.pending_since.reset();
            out.push_back({b.rule, false, b.subject, v, b.labels});
          }
          continue;
        }
        if (!beyond) {
          b.pending_since.reset();
          continue;
        }
        if (!b.pending_since) {
          b.pending_since = now;
        }
        if (now - *b.pending_since >= rule.for_duration) {
          b.firing = true;
          out.push_back({b.rule, true, b.subject, v, b.labels});
        }
      }
    }
  }
}

// ---- network

std::string Listener::subject() const {
  bool v6 = address.find(':') != std::string::npos;
  return proto + ":" + (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

bool Listener::loopback() const {
  return address.starts_with("127.") || address == "::1" || address.starts_with("::ffff:127.");
}

platform::Result<std::vector<Listener>> parse_proc_net(std::string_view text,
                                                       std::string_view proto, bool v6) {
  std::vector<Listener> out;
  bool header = true;
  std::size_t line_no = 0;
  while (!text.empty()) {
    std::string_view line = next_line(text);
    ++line_no;
    if (header) {
      header = false;  // "  sl  local_address rem_address   st ..."
      continue;
    }
    auto f = fields(line);
    if (f.empty()) {
      continue;
    }
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (f.size() < 10) {
      return platform::fail(std::errc::invalid_argument,
                            "line " + std::to_string(line_no) + ": too few fields");
    }
    std::uint32_t st = 0;
    if (!hex_u32(f[3], st)) {
      return platform::fail(std::errc::invalid_argument,
                            "line " + std::to_string(line_no) + ": bad state");
    }
    Listener l;
    l.proto = std::string(proto);
    std::string remote;
    std::uint16_t rport = 0;
    if (!decode_endpoint(f[1], v6, l.address, l.port) || !decode_endpoint(f[2], v6, remote, rport)) {
      return platform::fail(std::errc::invalid_argument,
                            "line " + std::to_string(line_no) + ": bad address");
    }
    bool listening = proto == "tcp" ? st == 0x0A  // TCP_LISTEN
                                    : st == 0x07 && rport == 0;  // bound, not connected
    if (!listening) {
      continue;
    }
    auto uid = platform::parse_uint64(f[7]);
    auto inode = platform::parse_uint64(f[9]);
    if (!uid || !inode) {
      return platform::fail(std::errc::invalid_argument,
                            "line " + std::to_string(line_no) + ": bad uid or inode");
    }
    l.uid = static_cast<uid_t>(*uid);
    l.inode = *inode;
    out.push_back(std::move(l));
  }
  return out;
}

platform::Result<std::vector<Listener>> read_listeners(const platform::Roots& roots) {
  std::vector<Listener> all;
  std::string text;
  for (auto [file, proto, v6] : {std::tuple{"net/tcp", "tcp", false}, std::tuple{"net/tcp6", "tcp", true},
                                 std::tuple{"net/udp", "udp", false}, std::tuple{"net/udp6", "udp", true}}) {
    std::string path = roots.proc(file);
    if (auto r = platform::read_file(path, text, 64 << 20); !r) {
      if (r.error().code == std::errc::no_such_file_or_directory) {
        continue;  // no IPv6 on this host
      }
      return tl::unexpected(r.error());
    }
    auto ls = parse_proc_net(text, proto, v6);
    if (!ls) {
      return platform::fail(ls.error().code, path + ": " + ls.error().context);
    }
    all.insert(all.end(), ls->begin(), ls->end());
  }
  return all;
}

std::map<std::uint64_t, SocketOwner> find_socket_owners(const platform::Roots& roots,
                                                        const std::set<std::uint64_t>& inodes) {
  std::map<std::uint64_t, SocketOwner> out;
  auto pids = platform::list_dir(roots.proc());
  if (!pids) {
    return out;
  }
  std::array<char, 64> buf{};
  for (const auto& p : *pids) {
    auto pid = platform::parse_uint64(p);
    if (!pid) {
      continue;
    }
    auto fds = platform::list_dir(roots.proc(p + "/fd"));
    if (!fds) {
      continue;  // gone, or not ours to read
    }
    for (const auto& fd : *fds) {
      auto link = platform::read_link(roots.proc(p + "/fd/" + fd));
      if (!link || !link->starts_with("socket:[")) {
        continue;
      }
      auto inode = platform::parse_uint64(std::string_view(*link).substr(8, link->size() - 9));
      if (!inode || !inodes.contains(*inode) || out.contains(*inode)) {
        continue;
      }
      SocketOwner o;
      o.pid = static_cast<pid_t>(*pid);
      if (auto comm = platform::read_small_file(roots.proc(p + "/comm"), buf)) {
        o.comm = std::string(platform::trim(*comm));
      }
      out.emplace(*inode, std::move(o));
    }
    if (out.size() == inodes.size()) {
      break;
    }
  }
  return out;
}

bool allowed(const Listener& l, const NetworkRule& rule) {
  if (rule.allow_loopback && l.loopback()) {
    return true;
  }
  return std::any_of(rule.allow.begin(), rule.allow.end(), [&](const NetworkAllow& a) {
    return a.proto == l.proto && (a.any_port || a.port == l.port) &&
           (a.address.empty() || a.address == l.address);
  });
}

// ---- integrity

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

// ---- accelerator use

platform::Result<ProcessInfo> read_process(const platform::Roots& roots, pid_t pid) {
  ProcessInfo p;
  p.pid = pid;
  const std::string dir = roots.proc(std::to_string(pid));
  std::string text;
  if (auto r = platform::read_file(dir + "/status", text, 64 << 10); !r) {
    return tl::unexpected(r.error());
  }
  auto uid_at = text.find("\nUid:");
  if (uid_at == std::string::npos) {
    return platform::fail(std::errc::invalid_argument, dir + "/status: no Uid line");
  }
  auto f = fields(std::string_view(text).substr(uid_at + 5, text.find('\n', uid_at + 1) - uid_at - 5));
  auto uid = f.empty() ? platform::Result<std::uint64_t>(tl::unexpected(platform::Error{}))
                       : platform::parse_uint64(f[0]);
  if (!uid) {
    return platform::fail(std::errc::invalid_argument, dir + "/status: bad Uid line");
  }
  p.uid = static_cast<uid_t>(*uid);
  p.user = platform::user_name(p.uid);
  if (platform::read_file(dir + "/cgroup", text, 64 << 10)) {
    for (std::string_view rest = text; !rest.empty();) {
      std::string_view line = next_line(rest);
      if (line.starts_with("0::")) {
        p.cgroup = std::string(line.substr(3));
      }
    }
  }
  if (auto r = platform::read_file(dir + "/stat", text, 64 << 10); !r) {
    return tl::unexpected(r.error());
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return platform::fail(std::errc::invalid_argument, dir + "/stat: malformed");
  }
  p.comm = text.substr(open + 1, close - open - 1);
  auto rest = fields(std::string_view(text).substr(close + 1));
  // After comm: state(3) ... starttime is field 22 overall, the 20th after comm.
  if (rest.size() < 20) {
    return platform::fail(std::errc::invalid_argument, dir + "/stat: too few fields");
  }
  auto start = platform::parse_uint64(rest[19]);
  if (!start) {
    return platform::fail(std::errc::invalid_argument, dir + "/stat: bad starttime");
  }
  p.start_time = *start;
  return p;
}

bool allowed(const ProcessInfo& p, const AcceleratorRule& rule) {
  for (const auto& u : rule.users) {
    if (u == p.user || u == std::to_string(p.uid)) {
      return true;
    }
  }
  for (const auto& c : rule.cgroups) {
    if (p.cgroup == c || (p.cgroup.starts_with(c) &&
                          (c.ends_with('/') || p.cgroup[c.size()] == '/'))) {
      return true;
    }
  }
  return false;
}

namespace {

bool zombie(const platform::Roots& roots, pid_t pid) {
  std::array<char, 512> buf{};
  auto text = platform::read_small_file(roots.proc(std::to_string(pid) + "/stat"), buf);
  if (!text) {
    return true;  // gone
  }
  auto close = text->rfind(')');
  return close == std::string_view::npos || close + 2 >= text->size() || (*text)[close + 2] == 'Z' ||
         (*text)[close + 2] == 'X';
}

}  // namespace

platform::Result<void> signal_process(const platform::Roots& roots, pid_t pid,
                                      std::uint64_t start_time, int signo) {
  // The pidfd pins the process: once it is open and the start time still matches, a signal
  // through it reaches that process or nobody, even if the pid is recycled meanwhile.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    return platform::fail_errno(errno, "pidfd_open " + std::to_string(pid));
  }
  auto info = read_process(roots, pid);
  if (!info || info->start_time != start_time) {
    ::close(fd);
    return platform::fail(std::errc::no_such_process,
                          "pid " + std::to_string(pid) + " is no longer the process seen");
  }
  int rc = static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, signo, nullptr, 0));
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return platform::fail_errno(err, "pidfd_send_signal " + std::to_string(pid));
  }
  return {};
}

bool process_alive(const platform::Roots& roots, pid_t pid, std::uint64_t start_time) {
  auto info = read_process(roots, pid);
  return info && info->start_time == start_time && !zombie(roots, pid);
}

}  // namespace gridnode::agent
