// Rule kind `accelerator`: who may use the accelerators, and what happens to the others.
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

Result<void> parse_accelerator_section(const PolicyParser& p, const toml::node& node, PolicyDraft& draft) {
  const std::string section = "accelerator";
  Policy& pol = draft.policy;
  Result<void> r;
  pol.accelerator.enabled = true;
  r = p.table(node, section, {"enabled", "users", "cgroups", "action", "grace", "interval", "severity"},
              [&](std::string_view key, const toml::node& v, const std::string& full) -> Result<void> {
                if (key == "enabled") {
                  auto b = p.boolean(v, full);
                  if (!b) {
                    return tl::unexpected(b.error());
                  }
                  pol.accelerator.enabled = *b;
                } else if (key == "users" || key == "cgroups") {
                  auto s = p.strings(v, full);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  (key == "users" ? pol.accelerator.users : pol.accelerator.cgroups) = *s;
                } else if (key == "action") {
                  auto s = p.string(v, full);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  if (*s == "report") {
                    pol.accelerator.action = AcceleratorAction::report;
                  } else if (*s == "terminate") {
                    pol.accelerator.action = AcceleratorAction::terminate;
                  } else {
                    return tl::unexpected(p.bad(v, full, "must be report or terminate"));
                  }
                } else if (key == "grace" || key == "interval") {
                  auto s = p.seconds(v, full, key == "grace" ? 0.01 : 0.1, 3600);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  (key == "grace" ? pol.accelerator.grace : pol.accelerator.interval) = *s;
                } else {
                  auto s = p.severity(v, full);
                  if (!s) {
                    return tl::unexpected(s.error());
                  }
                  pol.accelerator.severity = *s;
                }
                return {};
              });
  return r;
}

void accelerator_to_json(const Policy& policy, nlohmann::json& rules) {
  if (policy.accelerator.enabled) {
    rules.push_back({{"rule", "accelerator"},
                     {"type", "accelerator"},
                     {"users", policy.accelerator.users},
                     {"cgroups", policy.accelerator.cgroups},
                     {"action", policy.accelerator.action == AcceleratorAction::terminate ? "terminate"
                                                                                     : "report"},
                     {"grace_seconds", seconds_of(policy.accelerator.grace)},
                     {"interval_seconds", seconds_of(policy.accelerator.interval)},
                     {"severity", to_string(policy.accelerator.severity)}});
  }
}

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


// The nvml driver lists each GPU's compute processes as samples; without an AcceleratorControl
// the rule takes them from there.
void PolicyEngine::take_processes(const std::vector<DriverSlot>& slots) {
  sampled_procs_.clear();
  for (const auto& slot : slots) {
    const platform::Catalog* c = slot.front.catalog.get();
    if (c == nullptr || slot.state != DriverState::up) {
      continue;
    }
    for (const auto& r : slot.front.readings) {
      if (r.series >= c->series.size() ||
          c->family_of(r.series).name != "gridnode_gpu_process_memory_used_bytes") {
        continue;
      }
      AcceleratorProcess p;
      for (const auto& [k, v] : c->series[r.series].labels) {
        if (k == "pid") {
          p.pid = static_cast<pid_t>(platform::parse_uint64(v).value_or(0));
        } else if (k == "gpu") {
          p.gpu = static_cast<std::uint32_t>(platform::parse_uint64(v).value_or(0));
        } else if (k == "UUID") {
          p.uuid = v;
        }
      }
      p.used_memory_bytes = r.value.bits;
      if (p.pid > 0) {
        sampled_procs_.push_back(std::move(p));
      }
    }
  }
}

void PolicyEngine::do_accelerator() {
  if (accel_busy_ || !policy_.accelerator.enabled) {
    return;
  }
  accel_busy_ = true;
  asio::post(work_pool_, [this, gen = generation_, rule = policy_.accelerator,
                          roots = options_.roots, sampled = sampled_procs_] {
    using Found = std::vector<std::pair<AcceleratorProcess, ProcessInfo>>;
    platform::Result<Found> out = Found{};
    auto procs = options_.accelerator != nullptr && options_.accelerator->lists_processes()
                     ? options_.accelerator->list_processes()
                     : platform::Result<std::vector<AcceleratorProcess>>(sampled);
    if (!procs) {
      if (procs.error().code != std::errc::no_such_file_or_directory) {
        out = tl::unexpected(procs.error());
      }
    } else {
      for (const auto& p : *procs) {
        auto info = read_process(roots, p.pid);
        if (info && !allowed(*info, rule)) {
          out->emplace_back(p, *info);
        }
      }
    }
    asio::post(io_, [this, gen, out = std::move(out)]() mutable {
      on_accelerator_processes(gen, std::move(out));
    });
  });
}

PolicyEvent PolicyEngine::accelerator_event(const AcceleratorProcess& ap,
                                            const ProcessInfo& info) const {
  PolicyEvent e;
  e.rule = "accelerator";
  e.type = "accelerator";
  e.severity = policy_.accelerator.severity;
  e.subject = "pid " + std::to_string(info.pid) + " (" + info.comm + ")";
  e.details = "user " + info.user + " (uid " + std::to_string(info.uid) + ", cgroup " +
              (info.cgroup.empty() ? "?" : info.cgroup) + ") runs on GPU " +
              std::to_string(ap.gpu) + " without being allowed";
  return e;
}

void PolicyEngine::on_accelerator_processes(
    std::uint64_t generation,
    platform::Result<std::vector<std::pair<AcceleratorProcess, ProcessInfo>>> procs) {
  accel_busy_ = false;
  if (generation != generation_) {
    return;
  }
  if (!procs) {
    platform::log(Level::warning, "policy",
                  LogLine("accelerator rule: cannot list processes").kv("err", procs.error().message()));
    return;
  }
  std::set<std::pair<pid_t, std::uint64_t>> now;
  for (const auto& [ap, info] : *procs) {
    auto key = std::pair{info.pid, info.start_time};
    now.insert(key);
    if (reported_procs_.contains(key)) {
      continue;
    }
    if (policy_.accelerator.action == AcceleratorAction::terminate) {
      terminate(ap, info);
      continue;
    }
    raise(accelerator_event(ap, info));
  }
  reported_procs_ = std::move(now);
}

void PolicyEngine::terminate(const AcceleratorProcess& ap, const ProcessInfo& info) {
  PolicyEvent e = accelerator_event(ap, info);
  e.action = "terminate";
  const auto grace = policy_.accelerator.grace;
  asio::post(work_pool_, [this, e = std::move(e), info, grace, roots = options_.roots]() mutable {
    auto r = signal_process(roots, info.pid, info.start_time, SIGTERM);
    asio::post(io_, [this, e = std::move(e), r, info, grace, roots]() mutable {
      e.result = r ? "SIGTERM sent" : "failed: " + r.error().message();
      PolicyEvent after = e;
      raise(std::move(e));
      if (!r) {
        return;
      }
      auto timer = std::make_shared<asio::steady_timer>(io_, grace);
      timer->async_wait([this, timer, after = std::move(after), info, grace,
                         roots](const std::error_code& ec) mutable {
        if (ec) {
          return;
        }
        asio::post(work_pool_, [this, after = std::move(after), info, grace, roots]() mutable {
          std::string result;
          if (!process_alive(roots, info.pid, info.start_time)) {
            result = "terminated: exited after SIGTERM";
          } else if (auto k = signal_process(roots, info.pid, info.start_time, SIGKILL); k) {
            result = "killed: SIGKILL after " +
                     fmt_value(std::chrono::duration<double>(grace).count()) + " s grace";
          } else {
            result = "failed: SIGKILL: " + k.error().message();
          }
          asio::post(io_, [this, after = std::move(after), result]() mutable {
            after.result = result;
            after.details = "terminated a process that ran on an accelerator without being allowed";
            raise(std::move(after));
          });
        });
      });
    });
  });
}

}  // namespace gridnode::agent
