// Rule kind `network`: the sockets that may listen on this host (/proc/net, socket owners).
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

namespace {

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

// "tcp:22", "udp:*:123", "tcp:127.0.0.1:8080", "tcp:[::1]:631", "tcp:*" (any port).
Result<NetworkAllow> parse_allow(std::string_view text) {
  NetworkAllow a;
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return platform::fail(std::errc::invalid_argument, "\"" + std::string(text) +
                                                           "\": PROTO:PORT or PROTO:ADDRESS:PORT "
                                                           "expected (tcp:22, udp:127.0.0.1:53)");
  }
  a.proto = std::string(text.substr(0, colon));
  if (a.proto != "tcp" && a.proto != "udp") {
    return platform::fail(std::errc::invalid_argument,
                          "\"" + std::string(text) + "\": the protocol must be tcp or udp");
  }
  std::string_view rest = text.substr(colon + 1);
  auto last = rest.rfind(':');
  std::string_view port = rest;
  if (last != std::string_view::npos) {
    std::string_view addr = rest.substr(0, last);
    port = rest.substr(last + 1);
    if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') {
      addr = addr.substr(1, addr.size() - 2);
    }
    if (addr.empty()) {
      return platform::fail(std::errc::invalid_argument,
                            "\"" + std::string(text) + "\": empty address (use *)");
    }
    if (addr != "*") {
      a.address = std::string(addr);
    }
  }
  if (port == "*") {
    a.any_port = true;
    return a;
  }
  auto n = platform::parse_uint64(port);
  if (!n || *n > 65535) {
    return platform::fail(std::errc::invalid_argument,
                          "\"" + std::string(text) + "\": the port must be 0 to 65535 or *");
  }
  a.port = static_cast<std::uint16_t>(*n);
  return a;
}

std::string to_text(const NetworkAllow& a) {
  std::string port = a.any_port ? "*" : std::to_string(a.port);
  if (a.address.empty()) {
    return a.proto + ":" + port;
  }
  bool v6 = a.address.find(':') != std::string::npos;
  return a.proto + ":" + (v6 ? "[" + a.address + "]" : a.address) + ":" + port;
}

}  // namespace

Result<void> parse_network_section(const PolicyParser& p, const toml::node& node, PolicyDraft& draft) {
  const std::string section = "network";
  Policy& pol = draft.policy;
  Result<void> r;
  pol.network.enabled = true;
  r = p.table(node, section, {"enabled", "allow", "allow_loopback", "interval", "severity"},
              [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                if (key == "enabled" || key == "allow_loopback") {
                  auto b = p.boolean(v, full);
                  if (!b) {
                    return tl::unexpected(b.error());
                  }
                  (key == "enabled" ? pol.network.enabled : pol.network.allow_loopback) = *b;
                } else if (key == "allow") {
                  const auto* arr = v.as_array();
                  if (arr == nullptr) {
                    return tl::unexpected(p.bad(v, full, "must be an array of \"tcp:22\"-style strings"));
                  }
                  for (const auto& item : *arr) {
                    auto s = p.string(item, full);
                    if (!s) {
                      return tl::unexpected(s.error());
                    }
                    auto a = parse_allow(*s);
                    if (!a) {
                      return tl::unexpected(p.bad(item, full, a.error().context));
                    }
                    pol.network.allow.push_back(*a);
                  }
                } else if (key == "interval") {
                  auto s = p.seconds(v, full, 1, 3600);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  pol.network.interval = *s;
                } else {
                  auto s = p.severity(v, full);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  pol.network.severity = *s;
                }
                return {};
              });
  return r;
}

void network_to_json(const Policy& policy, nlohmann::json& rules) {
  if (policy.network.enabled) {
    std::vector<std::string> allow;
    for (const auto& a : policy.network.allow) {
      allow.push_back(to_text(a));
    }
    rules.push_back({{"rule", "network"},
                     {"type", "network"},
                     {"allow", allow},
                     {"allow_loopback", policy.network.allow_loopback},
                     {"interval_seconds", seconds_of(policy.network.interval)},
                     {"severity", to_string(policy.network.severity)},
                     {"action", "report"}});
  }
}

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

void PolicyEngine::do_network() {
  if (network_busy_ || !policy_.network.enabled) {
    return;
  }
  network_busy_ = true;
  std::set<std::string> known = reported_listeners_;
  asio::post(work_pool_, [this, gen = generation_, known = std::move(known),
                          rule = policy_.network, roots = options_.roots] {
    auto ls = read_listeners(roots);
    std::map<std::uint64_t, SocketOwner> owners;
    if (ls) {
      std::set<std::uint64_t> wanted;
      for (const auto& l : *ls) {
        if (!allowed(l, rule) && !known.contains(l.subject() + "#" + std::to_string(l.inode))) {
          wanted.insert(l.inode);
        }
      }
      if (!wanted.empty()) {
        owners = find_socket_owners(roots, wanted);
      }
    }
    asio::post(io_, [this, gen, ls = std::move(ls), owners = std::move(owners)]() mutable {
      on_listeners(gen, std::move(ls), std::move(owners));
    });
  });
}

void PolicyEngine::on_listeners(std::uint64_t generation,
                                platform::Result<std::vector<Listener>> listeners,
                                std::map<std::uint64_t, SocketOwner> owners) {
  network_busy_ = false;
  if (generation != generation_) {
    return;
  }
  if (!listeners) {
    platform::log(Level::warning, "policy",
                  LogLine("network rule: cannot read listeners").kv("err", listeners.error().message()));
    return;
  }
  std::set<std::string> now;
  for (const auto& l : *listeners) {
    if (allowed(l, policy_.network)) {
      continue;
    }
    std::string key = l.subject() + "#" + std::to_string(l.inode);
    now.insert(key);
    if (reported_listeners_.contains(key)) {
      continue;
    }
    PolicyEvent e;
    e.rule = "network";
    e.type = "network";
    e.severity = policy_.network.severity;
    e.subject = l.subject();
    e.details = "listener not allowed: port " + std::to_string(l.port);
    if (auto it = owners.find(l.inode); it != owners.end()) {
      e.details += " by pid " + std::to_string(it->second.pid) + " (" + it->second.comm + ")";
    } else {
      e.details += " by uid " + std::to_string(l.uid) + " (process not found)";
    }
    raise(std::move(e));
  }
  reported_listeners_ = std::move(now);  // a listener that went and came back is told again
}

}  // namespace gridnode::agent
