// Each rule against real files, real processes, real sockets and fixture trees, through the
// engine that schedules it.
#include "gridnode/agent/policy_engine.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <thread>

#include "fake_accelerator.hpp"
#include "gridnode/agent/policy_bundle.hpp"
#include "gridnode/crypto/crypto.hpp"
#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

using namespace std::chrono_literals;
using testing::FakeTree;
using testing::TempDir;

// Runs the loop until `pred` holds or `limit` passes.
template <class Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) {
      return false;
    }
    io.restart();
    if (io.run_for(5ms) == 0) {
      std::this_thread::sleep_for(1ms);
    }
  }
  return true;
}

const PolicyEvent* find_event(const EventLog& log, std::string_view rule,
                              std::string_view needle = {}) {
  for (const auto& e : log.recent()) {
    if (e.rule == rule && (needle.empty() || e.subject.find(needle) != std::string::npos ||
                           e.details.find(needle) != std::string::npos ||
                           e.result.find(needle) != std::string::npos)) {
      return &e;
    }
  }
  return nullptr;
}

Policy policy_of(std::string_view text) {
  auto p = parse_policy(text, "test.toml");
  EXPECT_TRUE(p) << p.error().message();
  return p ? *p : default_policy();
}

PolicyEngine::Options options(platform::Roots roots = {}, AcceleratorControl* accel = nullptr,
                              std::string policy_file = {}) {
  PolicyEngine::Options o;
  o.roots = std::move(roots);
  o.accelerator = accel;
  o.policy_file = std::move(policy_file);
  return o;
}

void write(const std::string& path, std::string_view data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// ---- limits and intrusion, on sampler slots

struct Slots {
  std::vector<DriverSlot> slots;
  std::shared_ptr<platform::Catalog> catalog = std::make_shared<platform::Catalog>();
  Slots() {
    auto temp = catalog->add_family({"DCGM_FI_DEV_GPU_TEMP", "GPU temperature",
                                     platform::MetricType::gauge, {1, 0}, "°C"});
    auto intr = catalog->add_family({"node_hwmon_intrusion_alarm", "intrusion",
                                     platform::MetricType::gauge, {1, 0}, ""});
    catalog->add_series(temp, {{"gpu", "0"}, {"UUID", "GPU-a"}});
    catalog->add_series(temp, {{"gpu", "1"}, {"UUID", "GPU-b"}});
    catalog->add_series(intr, {{"chip", "nct6775"}, {"sensor", "intrusion0"}});
    slots.emplace_back();
    slots[0].state = DriverState::up;
    slots[0].front.catalog = catalog;
    set(40, 40, 0);
  }
  void set(std::int64_t gpu0, std::int64_t gpu1, std::int64_t alarm) {
    slots[0].front.readings = {{0, platform::Value::of_signed(gpu0)},
                               {1, platform::Value::of_signed(gpu1)},
                               {2, platform::Value::of_unsigned(static_cast<std::uint64_t>(alarm))}};
  }
};

TEST(Limits, HysteresisAndMinimumDurationMakeOneEventOfAFlappingSensor) {
  LimitsEvaluator ev;
  auto p = policy_of(
      "[[limit]]\nname = \"hot\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\nabove = 85\nclear = 80\n"
      "for = 10\n");
  ev.set_rules(p.limits);
  Slots s;
  auto t = std::chrono::steady_clock::time_point{} + 1h;
  std::vector<LimitTransition> out;
  s.set(90, 40, 0);
  ev.evaluate(s.slots, t, out);
  EXPECT_TRUE(out.empty());  // not yet for 10 s
  ev.evaluate(s.slots, t + 5s, out);
  EXPECT_TRUE(out.empty());
  s.set(84, 40, 0);  // dips below the threshold: the duration starts again
  ev.evaluate(s.slots, t + 6s, out);
  s.set(90, 40, 0);
  ev.evaluate(s.slots, t + 7s, out);
  ev.evaluate(s.slots, t + 16s, out);
  EXPECT_TRUE(out.empty());
  ev.evaluate(s.slots, t + 17s, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].fired);
  EXPECT_EQ(out[0].subject, "DCGM_FI_DEV_GPU_TEMP{UUID=\"GPU-a\",gpu=\"0\"}");
  EXPECT_EQ(out[0].value, 90);
  // Flapping between 82 and 90 stays one event: it clears only at 80.
  for (int i = 0; i < 20; ++i) {
    s.set(i % 2 ? 82 : 90, 40, 0);
    ev.evaluate(s.slots, t + 18s + std::chrono::seconds(i), out);
  }
  EXPECT_EQ(out.size(), 1u);
  s.set(79, 40, 0);
  ev.evaluate(s.slots, t + 60s, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[1].fired);
  EXPECT_EQ(ev.firing(), 0u);
}

TEST(Limits, LabelsNarrowAndBelowWorks) {
  LimitsEvaluator ev;
  auto p = policy_of(
      "[[limit]]\nname = \"cold1\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\nlabels = { gpu = \"1\" }\n"
      "below = 10\n[intrusion]\nenabled = false\n");
  ev.set_rules(p.limits);
  Slots s;
  std::vector<LimitTransition> out;
  s.set(5, 40, 0);
  ev.evaluate(s.slots, {}, out);
  EXPECT_TRUE(out.empty());  // gpu 0 is not watched
  s.set(5, 5, 0);
  ev.evaluate(s.slots, {}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].subject.find("gpu=\"1\""), std::string::npos);
  EXPECT_EQ(ev.bound_series(), 1u);
}

TEST(Limits, StateSurvivesANewCatalog) {
  LimitsEvaluator ev;
  ev.set_rules(default_policy().limits);
  Slots s;
  std::vector<LimitTransition> out;
  s.set(40, 40, 1);
  ev.evaluate(s.slots, {}, out);
  ASSERT_EQ(out.size(), 1u);
  s.slots[0].front.catalog = std::make_shared<platform::Catalog>(*s.catalog);  // new pointer
  ev.evaluate(s.slots, {}, out);
  EXPECT_EQ(out.size(), 1u);  // still firing, not fired again
}

TEST(PolicyEngine, IntrusionAlarmIsAnEventAndItsClearingToo) {
  asio::io_context io;
  PolicyEngine engine(io, {});
  engine.apply(default_policy());
  Slots s;
  s.set(40, 40, 1);
  auto t = std::chrono::steady_clock::now();
  engine.evaluate(s.slots, t);
  engine.evaluate(s.slots, t + 1s);
  const PolicyEvent* e = find_event(engine.events(), "intrusion");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, "intrusion");
  EXPECT_EQ(e->severity, Severity::alert);
  EXPECT_NE(e->subject.find("sensor=\"intrusion0\""), std::string::npos);
  EXPECT_EQ(engine.events().total(), 1u);
  s.set(40, 40, 0);
  engine.evaluate(s.slots, t + 2s);
  EXPECT_EQ(engine.events().total(), 2u);
  EXPECT_EQ(engine.events().recent().back().result, "cleared");
  auto report = engine.events().take_report_events(t + 3s);
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0].kind, protocol::EventKind::policy);
  EXPECT_EQ(report[0].source, "intrusion");
}

// ---- local access

TEST(PolicyEngine, AccessByGroup) {
  asio::io_context io;
  PolicyEngine engine(io, {});
  platform::PeerCredentials tech{.pid = 7, .uid = 65534, .gid = 65534, .groups = {4242}};
  platform::PeerCredentials admin{.pid = 8, .uid = 65534, .gid = 65534, .groups = {4243}};
  platform::PeerCredentials root{.pid = 9, .uid = 0, .gid = 0, .groups = {}};
  // Default: the socket group reads, only root sees the policy.
  EXPECT_FALSE(engine.authorize("sensors", tech, 4242));
  auto why = engine.authorize("policy", tech, 4242);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("does not let user nobody run \"policy\""), std::string::npos);
  EXPECT_FALSE(engine.authorize("policy", root, 4242));
  EXPECT_TRUE(engine.authorize("status", tech, std::nullopt));
  const PolicyEvent* e = find_event(engine.events(), "access");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->result, "refused");
  EXPECT_NE(e->subject.find("uid 65534"), std::string::npos);
  // An [access] section: technicians read sensors only, admins do everything.
  engine.apply(policy_of("[[access.allow]]\ngroup = \"4242\"\ncommands = [\"sensors\"]\n"
                         "[[access.allow]]\ngroup = \"4243\"\ncommands = [\"*\"]\n"));
  EXPECT_FALSE(engine.authorize("sensors", tech, 4242));
  EXPECT_TRUE(engine.authorize("status", tech, 4242));
  EXPECT_TRUE(engine.authorize("policy", tech, 4242));
  EXPECT_FALSE(engine.authorize("policy", admin, 4242));
  EXPECT_EQ(engine.access_groups(), (std::vector<gid_t>{4242, 4243}));
}

// ---- network: parsing, a fixture tree, and a real listening socket

constexpr std::string_view kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n"
    "   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 100 0 0 10 0\n"
    "   2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3333 1 0 20 4 30 10 -1\n";
constexpr std::string_view kUdp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
    "  1: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 4444 2 0 0\n"
    "  2: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 5555 2 0 0\n";

TEST(Network, ParsesProcNetTables) {
  auto tcp = parse_proc_net(kTcp, "tcp", false);
  ASSERT_TRUE(tcp) << tcp.error().message();
  ASSERT_EQ(tcp->size(), 2u);  // the established one is not a listener
  EXPECT_EQ((*tcp)[0].subject(), "tcp:127.0.0.1:8080");
  EXPECT_TRUE((*tcp)[0].loopback());
  EXPECT_EQ((*tcp)[1].subject(), "tcp:0.0.0.0:22");
  EXPECT_EQ((*tcp)[1].inode, 2222u);
  auto udp = parse_proc_net(kUdp6, "udp", true);
  ASSERT_TRUE(udp) << udp.error().message();
  ASSERT_EQ(udp->size(), 2u);
  EXPECT_EQ((*udp)[0].subject(), "udp:[::]:53");
  EXPECT_EQ((*udp)[0].uid, 101u);
  EXPECT_EQ((*udp)[1].subject(), "udp:[::1]:8000");
  EXPECT_FALSE(parse_proc_net("header\n 0: zz:zz 00:00 0A\n", "tcp", false));
  EXPECT_FALSE(parse_proc_net("header\n 0: 0100007F:1F90 00000000:0000 0A a b c 0 0 x\n", "tcp", false));
}

TEST(Network, AllowList) {
  auto p = policy_of("[network]\nallow = [\"tcp:22\", \"udp:[::]:53\"]\n");
  Listener ssh{"tcp", "0.0.0.0", 22, 1, 0};
  Listener web{"tcp", "0.0.0.0", 80, 2, 0};
  Listener dns{"udp", "::", 53, 3, 0};
  Listener dns4{"udp", "0.0.0.0", 53, 4, 0};
  Listener local{"tcp", "127.0.0.1", 9999, 5, 0};
  EXPECT_TRUE(allowed(ssh, p.network));
  EXPECT_FALSE(allowed(web, p.network));
  EXPECT_TRUE(allowed(dns, p.network));
  EXPECT_FALSE(allowed(dns4, p.network));
  EXPECT_TRUE(allowed(local, p.network));
  p.network.allow_loopback = false;
  EXPECT_FALSE(allowed(local, p.network));
}

TEST(Network, FixtureTreeNamesTheProcess) {
  FakeTree proc;
  proc.write("net/tcp", kTcp);
  proc.write("net/udp6", kUdp6);
  proc.write("4321/comm", "rogue-httpd\n");
  proc.symlink("socket:[2222]", "4321/fd/5");
  proc.symlink("/dev/null", "4321/fd/0");
  platform::Roots roots{"/nonexistent", proc.root()};
  auto ls = read_listeners(roots);
  ASSERT_TRUE(ls) << ls.error().message();
  EXPECT_EQ(ls->size(), 4u);
  auto owners = find_socket_owners(roots, {2222, 4444});
  ASSERT_TRUE(owners.contains(2222));
  EXPECT_EQ(owners[2222].pid, 4321);
  EXPECT_EQ(owners[2222].comm, "rogue-httpd");
  EXPECT_FALSE(owners.contains(4444));

  asio::io_context io;
  PolicyEngine engine(io, options(roots));
  engine.apply(policy_of("[network]\nallow = [\"udp:53\"]\n"));
  engine.check_network_now();
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "network") != nullptr; }));
  const PolicyEvent* e = find_event(engine.events(), "network", "tcp:0.0.0.0:22");
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->details.find("pid 4321 (rogue-httpd)"), std::string::npos) << e->details;
  EXPECT_EQ(find_event(engine.events(), "network", "8080"), nullptr);  // loopback
  EXPECT_EQ(find_event(engine.events(), "network", "udp:[::1]:8000"), nullptr) << "loopback";
  EXPECT_EQ(find_event(engine.events(), "network", "udp:[::]:53"), nullptr) << "allowed";
  // Told once: the next pass is quiet.
  auto before = engine.events().total();
  engine.check_network_now();
  run_until(io, [] { return false; }, 200ms);
  EXPECT_EQ(engine.events().total(), before);
}

TEST(Network, RealListeningSocketIsNamedWithThisProcess) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));

  asio::io_context io;
  PolicyEngine engine(io, {});  // the real /proc: the socket is real
  engine.apply(policy_of("[network]\nallow_loopback = false\n[events]\nburst = 10000\n"));
  engine.check_network_now();
  const std::string subject = "tcp:127.0.0.1:" + port;
  EXPECT_TRUE(run_until(io, [&] { return find_event(engine.events(), "network", subject); }));
  const PolicyEvent* e = find_event(engine.events(), "network", subject);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->details.find("pid " + std::to_string(::getpid())), std::string::npos)
      << e->details;
  ::close(fd);
}

// ---- integrity

TEST(Integrity, HashMatchesSha256AndHonoursTheCap) {
  TempDir dir;
  std::string data(2 << 20, 'x');
  write(dir / "f", data);
  std::atomic<bool> cancel{false};
  std::uint64_t bytes = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto d = hash_file(dir / "f", 8 << 20, cancel, &bytes);  // 2 MiB at 8 MiB/s: >= 0.25 s
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, crypto::sha256(data));
  EXPECT_EQ(bytes, data.size());
  EXPECT_GE(took, 240ms);
  cancel = true;
  EXPECT_EQ(hash_file(dir / "f", 1024, cancel).error().code, std::errc::operation_canceled);
  EXPECT_EQ(hash_file(dir / "missing", 0, cancel).error().code,
            std::errc::no_such_file_or_directory);
}

TEST(Integrity, Manifest) {
  auto m = parse_manifest(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.bin\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *./sub/b.bin\n",
      "SUMS");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->contains("a.bin"));
  EXPECT_TRUE(m->contains("sub/b.bin"));
  auto bad = parse_manifest("abc  x\n", "SUMS");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("SUMS:1:"), std::string::npos);
  EXPECT_FALSE(parse_manifest(std::string(64, 'a') + "  ../etc/passwd\n", "SUMS"));
}

TEST(Integrity, MismatchNewMissingAndPermissionChanges) {
  TempDir dir;
  ::mkdir((dir / "models").c_str(), 0755);
  write(dir / "models/a.bin", "weights-a");
  write(dir / "models/b.bin", "weights-b");
  write(dir / "SUMS", crypto::to_hex(crypto::sha256(std::string_view("weights-a"))) + "  a.bin\n" +
                          crypto::to_hex(crypto::sha256(std::string_view("weights-b"))) + "  b.bin\n");
  write(dir / "agent.bin", "binary");
  IntegrityRule rule;
  rule.max_bytes_per_second = 0;
  rule.watch = {{dir / "models", std::nullopt, dir / "SUMS"},
                {dir / "agent.bin", crypto::sha256(std::string_view("binary")), ""},
                {dir / "conf", std::nullopt, ""}};  // missing from the start
  write(dir / "conf", "k = 1");
  IntegrityChecker c(rule);
  std::atomic<bool> cancel{false};
  auto f = c.check_all(cancel);
  EXPECT_TRUE(f.empty()) << f[0].path << " " << f[0].what << " " << f[0].details;

  write(dir / "models/a.bin", "tampered");
  write(dir / "models/extra.bin", "new");
  ::unlink((dir / "models/b.bin").c_str());
  ::chmod((dir / "agent.bin").c_str(), 0666);
  write(dir / "conf", "k = 2");  // baseline taken on first use
  f = c.check_all(cancel);
  std::map<std::string, std::string> what;
  for (const auto& x : f) {
    what[x.path] = x.what;
  }
  EXPECT_EQ(what[dir / "models/a.bin"], "mismatch");
  EXPECT_EQ(what[dir / "models/extra.bin"], "new");
  EXPECT_EQ(what[dir / "models/b.bin"], "missing");
  EXPECT_EQ(what[dir / "agent.bin"], "permissions");
  EXPECT_EQ(what[dir / "conf"], "mismatch");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_TRUE(c.check_all(cancel).empty());  // told once

  write(dir / "models/a.bin", "weights-a");
  f = c.check_paths({dir / "models/a.bin", "/elsewhere"}, cancel);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_TRUE(f[0].restored());
}

TEST(PolicyEngine, IntegrityReactsToInotify) {
  TempDir dir;
  write(dir / "model.bin", "weights");
  asio::io_context io;
  PolicyEngine engine(io, {});
  engine.apply(policy_of("[integrity]\ninterval = 3600\n[[integrity.watch]]\npath = \"" +
                         (dir / "model.bin") + "\"\nsha256 = \"" +
                         crypto::to_hex(crypto::sha256(std::string_view("weights"))) + "\"\n"));
  engine.start();
  ASSERT_TRUE(run_until(io, [&] {
    return engine.bytes_hashed() > 0 && !engine.integrity_busy() && engine.watching();
  }));
  EXPECT_EQ(find_event(engine.events(), "integrity"), nullptr);
  write(dir / "model.bin", "poisoned");  // no periodic pass for an hour: inotify must see it
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "integrity") != nullptr; }));
  const PolicyEvent* e = find_event(engine.events(), "integrity");
  EXPECT_EQ(e->subject, dir / "model.bin");
  EXPECT_NE(e->details.find("mismatch"), std::string::npos);
  EXPECT_EQ(e->severity, Severity::crit);
  engine.stop();
}

// ---- accelerator use, with real child processes

pid_t spawn_child(bool ignore_term) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (ignore_term) {
      ::signal(SIGTERM, SIG_IGN);
    }
    for (;;) {
      ::pause();
    }
  }
  return pid;
}

int reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
}

TEST(PolicyEngine, AcceleratorAllowListReports) {
  FakeTree proc;
  proc.write("77/status", "Name:\tpython\nUid:\t1234\t1234\t1234\t1234\n");
  proc.write("77/cgroup", "0::/user.slice/user-1234.slice/session-3.scope\n");
  proc.write("77/stat", "77 (python) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n");
  proc.write("78/status", "Name:\tinfer\nUid:\t1234\t1234\t1234\t1234\n");
  proc.write("78/cgroup", "0::/system.slice/infer.service\n");
  proc.write("78/stat", "78 (infer) S 1 78 78 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 6666 0 0\n");
  testing::FakeAcceleratorControl accel;
  accel.set_processes({{77, 0, "GPU-a", 1 << 30}, {78, 1, "GPU-b", 1 << 30}});
  asio::io_context io;
  PolicyEngine engine(io, options({"/nonexistent", proc.root()}, &accel));
  engine.apply(policy_of("[accelerator]\nusers = [\"mlsvc\"]\ncgroups = [\"/system.slice/infer.service\"]\n"));
  engine.check_accelerator_now();
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "accelerator"); }));
  const PolicyEvent* e = find_event(engine.events(), "accelerator");
  EXPECT_EQ(e->subject, "pid 77 (python)");
  EXPECT_NE(e->details.find("uid 1234"), std::string::npos);
  EXPECT_NE(e->details.find("GPU 0"), std::string::npos);
  EXPECT_EQ(e->action, "report");
  EXPECT_EQ(find_event(engine.events(), "accelerator", "pid 78"), nullptr);  // its cgroup may
}

TEST(PolicyEngine, AcceleratorProcessesFromTheNvmlDriversSamples) {
  // Without an AcceleratorControl the rule reads the nvml driver's process samples.
  FakeTree proc;
  proc.write("77/status", "Name:\tpython\nUid:\t1234\t1234\t1234\t1234\n");
  proc.write("77/cgroup", "0::/user.slice\n");
  proc.write("77/stat", "77 (python) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n");
  auto c = std::make_shared<platform::Catalog>();
  auto f = c->add_family({"gridnode_gpu_process_memory_used_bytes", "p",
                          platform::MetricType::gauge, {1, 0}, "B"});
  c->add_series(f, {{"UUID", "GPU-a"}, {"cgroup", "/user.slice"}, {"gpu", "3"}, {"pid", "77"},
                    {"uid", "1234"}});
  std::vector<DriverSlot> slots(1);
  slots[0].state = DriverState::up;
  slots[0].front.catalog = c;
  slots[0].front.readings = {{0, platform::Value::of_unsigned(1 << 30)}};
  asio::io_context io;
  PolicyEngine engine(io, options({"/nonexistent", proc.root()}));
  engine.apply(policy_of("[accelerator]\nusers = [\"mlsvc\"]\n"));
  engine.evaluate(slots, std::chrono::steady_clock::now());
  engine.check_accelerator_now();
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "accelerator"); }));
  EXPECT_EQ(find_event(engine.events(), "accelerator")->subject, "pid 77 (python)");
  EXPECT_NE(find_event(engine.events(), "accelerator")->details.find("GPU 3"), std::string::npos);
}

TEST(PolicyEngine, TerminateSendsSigtermThenSigkillAfterGrace) {
  const pid_t polite = spawn_child(false);
  const pid_t stubborn = spawn_child(true);
  ASSERT_GT(polite, 0);
  ASSERT_GT(stubborn, 0);
  // The children are root like us: an allowlist without root makes them intruders.
  testing::FakeAcceleratorControl accel;
  accel.set_processes({{polite, 0, "GPU-a", 1}, {stubborn, 1, "GPU-b", 1}});
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));  // the real /proc
  engine.apply(policy_of(
      "[accelerator]\nusers = [\"mlsvc\"]\naction = \"terminate\"\ngrace = 0.3\n"
      "[events]\nburst = 100\n"));
  // SIGTERM must have landed in the stubborn child's ignore: wait until it is set up.
  std::this_thread::sleep_for(50ms);
  engine.check_accelerator_now();
  auto finals = [&] {
    int n = 0;
    for (const auto& e : engine.events().recent()) {
      n += e.rule == "accelerator" && (e.result.starts_with("terminated") ||
                                       e.result.starts_with("killed") ||
                                       e.result.starts_with("failed"));
    }
    return n;
  };
  ASSERT_TRUE(run_until(io, [&] { return finals() == 2; }));
  const std::string polite_subject = "pid " + std::to_string(polite) + " ";
  const std::string stubborn_subject = "pid " + std::to_string(stubborn) + " ";
  std::string polite_result, stubborn_result;
  int sigterm_sent = 0;
  for (const auto& e : engine.events().recent()) {
    EXPECT_EQ(e.action, "terminate");
    sigterm_sent += e.result == "SIGTERM sent";
    if (e.result == "SIGTERM sent") {
      continue;
    }
    (e.subject.starts_with(polite_subject) ? polite_result : stubborn_result) = e.result;
  }
  EXPECT_EQ(sigterm_sent, 2);
  EXPECT_EQ(polite_result, "terminated: exited after SIGTERM");
  EXPECT_TRUE(stubborn_result.starts_with("killed: SIGKILL after 0.3")) << stubborn_result;
  EXPECT_EQ(reap(polite), SIGTERM);
  EXPECT_EQ(reap(stubborn), SIGKILL);
}

TEST(PolicyEngine, CapPowerLowersAndRestores) {
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(policy_of("[[limit]]\nname = \"gpu-hot\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\n"
                         "above = 85\nclear = 80\naction = \"cap_power\"\npower_limit = 250\n"));
  Slots s;
  auto t = std::chrono::steady_clock::now();
  s.set(90, 40, 0);
  engine.evaluate(s.slots, t);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "lowered"); }));
  EXPECT_EQ(accel.limit(0), 250000u);
  const PolicyEvent* e = find_event(engine.events(), "gpu-hot", "lowered");
  EXPECT_EQ(e->action, "cap_power");
  EXPECT_EQ(e->result, "power limit 250.0 W, was 400.0 W");
  s.set(79, 40, 0);
  engine.evaluate(s.slots, t + 1s);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "restored"); }));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(accel.set_calls(), 2u);
}

constexpr std::string_view kGpuHot =
    "[[limit]]\nname = \"gpu-hot\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\n"
    "above = 85\nclear = 80\naction = \"cap_power\"\npower_limit = 250\n"
    "[events]\nburst = 100\n";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(PolicyEngine, CapPowerRecordsTheOriginalAndARestartRestoresIt) {
  TempDir dir;
  testing::FakeAcceleratorControl accel;  // the GPU's limit outlives the agent, as NVML's does
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  const std::string record = dir / "power-caps.json";
  Slots s;
  auto t = std::chrono::steady_clock::now();
  {
    asio::io_context io;
    PolicyEngine engine(io, o);
    engine.load();
    engine.apply(policy_of(kGpuHot));
    s.set(90, 40, 0);
    engine.evaluate(s.slots, t);
    ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "lowered"); }));
    EXPECT_EQ(accel.limit(0), 250000u);
    EXPECT_EQ(read_text(record),
              "{\"GPU-a\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
    engine.stop();  // stopped while capped: the cap stays
  }
  EXPECT_EQ(accel.limit(0), 250000u);
  // The next start restores the recorded limit after its first round, whatever the rule says
  // now; the cool GPU is not capped again.
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  s.set(70, 40, 0);
  engine.evaluate(s.slots, t + 1s);
  ASSERT_TRUE(
      run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "last stopped"); }));
  const PolicyEvent* e = find_event(engine.events(), "gpu-hot", "last stopped");
  EXPECT_EQ(e->action, "cap_power");
  EXPECT_EQ(e->subject, "GPU 0 (GPU-a)");
  EXPECT_EQ(e->result, "power limit 400.0 W");
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(read_text(record), "{}\n");
}

TEST(PolicyEngine, CapPowerRestoreAfterARestartWaitsForTheAcceleratorDriver) {
  TempDir dir;
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 250000);  // capped by the previous run, which recorded 400 W
  write(dir / "power-caps.json",
        "{\"GPU-a\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
  accel.fail_with(platform::Error{std::make_error_code(std::errc::resource_unavailable_try_again),
                                  "NVML is not started"});
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(70, 40, 0);
  auto t = std::chrono::steady_clock::now();
  // The accelerator driver has not found its GPUs yet: no event, tried again next round.
  engine.evaluate(s.slots, t);
  run_until(io, [] { return false; }, 100ms);
  EXPECT_TRUE(engine.events().recent().empty());
  accel.fail_with(std::nullopt);
  engine.evaluate(s.slots, t + 1s);
  ASSERT_TRUE(
      run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "last stopped"); }));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

TEST(PolicyEngine, CapPowerAfterARestartWhileStillHotKeepsTheRecordedOriginal) {
  TempDir dir;
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 250000);
  write(dir / "power-caps.json",
        "{\"GPU-a\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(90, 40, 0);
  auto t = std::chrono::steady_clock::now();
  // Hot from the first round: the rule caps at once (no `for`), and the limit it replaces is
  // the recorded one, not the cap in force; nothing is restored in between.
  engine.evaluate(s.slots, t);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "lowered"); }));
  EXPECT_EQ(find_event(engine.events(), "gpu-hot", "lowered")->result,
            "power limit 250.0 W, was 400.0 W");
  engine.evaluate(s.slots, t + 1s);
  run_until(io, [] { return false; }, 100ms);
  EXPECT_EQ(find_event(engine.events(), "gpu-hot", "last stopped"), nullptr);
  EXPECT_EQ(accel.limit(0), 250000u);
  EXPECT_EQ(accel.set_calls(), 1u);
  // Cool again: back to the original.
  s.set(70, 40, 0);
  engine.evaluate(s.slots, t + 2s);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "restored"); }));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

TEST(PolicyEngine, CapPowerFailureIsAnEventWithTheReason) {
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  accel.fail_with(platform::Error{std::make_error_code(std::errc::operation_not_permitted),
                                  "GPU 0: needs root or CAP_SYS_ADMIN"});
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(90, 40, 0);
  engine.evaluate(s.slots, std::chrono::steady_clock::now());
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "failed"); }));
  const PolicyEvent* e = find_event(engine.events(), "gpu-hot", "failed");
  EXPECT_EQ(e->details, "cannot cap power");
  EXPECT_TRUE(e->result.starts_with("failed: GPU 0: needs root or CAP_SYS_ADMIN")) << e->result;
  EXPECT_EQ(accel.limit(0), 400000u);
}

// Two rules capping one GPU: gpu-warm (above 80, clear 75) caps at $1 W, gpu-hot (above 85,
// clear 80) at $2 W.
std::string two_caps(int warm_watts, int hot_watts) {
  return "[[limit]]\nname = \"gpu-warm\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\nabove = 80\n"
         "clear = 75\naction = \"cap_power\"\npower_limit = " +
         std::to_string(warm_watts) +
         "\n[[limit]]\nname = \"gpu-hot\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\nabove = 85\n"
         "clear = 80\naction = \"cap_power\"\npower_limit = " +
         std::to_string(hot_watts) + "\n[events]\nburst = 100\n";
}

// The outcomes of the cap_power actions so far ("rule: details => result"), oldest first; the
// transitions' own events ("capping power", "restoring power") left out.
std::vector<std::string> cap_outcomes(const EventLog& log) {
  std::vector<std::string> out;
  for (const auto& e : log.recent()) {
    if (e.action == "cap_power" && e.result != "capping power" && e.result != "restoring power") {
      out.push_back(e.rule + ": " + e.details + " => " + e.result);
    }
  }
  return out;
}

// Sets GPU 0 to `temp`, evaluates at `t` and waits for the `n`th cap_power outcome.
bool step(asio::io_context& io, PolicyEngine& engine, Slots& s, std::int64_t temp,
          std::chrono::steady_clock::time_point t, std::size_t n) {
  s.set(temp, 40, 0);
  engine.evaluate(s.slots, t);
  return run_until(io, [&] { return cap_outcomes(engine.events()).size() >= n; });
}

TEST(PolicyEngine, CapPowerTwoRulesOnOneGpuTheLowestCapAppliesUntilTheLastClears) {
  TempDir dir;
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  std::vector<std::string> records;  // power-caps.json as each limit was about to change
  accel.on_set(
      [&](std::uint32_t, std::uint32_t) { records.push_back(read_text(dir / "power-caps.json")); });
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(two_caps(300, 250)));
  Slots s;
  auto t = std::chrono::steady_clock::now();
  ASSERT_TRUE(step(io, engine, s, 82, t, 1));  // gpu-warm
  EXPECT_EQ(accel.limit(0), 300000u);
  ASSERT_TRUE(step(io, engine, s, 90, t + 1s, 2));  // and gpu-hot: the lower cap applies
  EXPECT_EQ(accel.limit(0), 250000u);
  ASSERT_TRUE(step(io, engine, s, 78, t + 2s, 3));  // gpu-hot clears: gpu-warm's cap again
  EXPECT_EQ(accel.limit(0), 300000u);
  ASSERT_TRUE(step(io, engine, s, 70, t + 3s, 4));  // the last one clears: the original
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(cap_outcomes(engine.events()),
            (std::vector<std::string>{
                "gpu-warm: GPU 0 power limit lowered => power limit 300.0 W, was 400.0 W",
                "gpu-hot: GPU 0 power limit lowered => power limit 250.0 W, was 300.0 W",
                "gpu-hot: GPU 0 power limit raised, rule gpu-warm's cap applies => power limit "
                "300.0 W (gpu-warm), was 250.0 W",
                "gpu-warm: GPU 0 power limit restored => power limit 400.0 W"}));
  EXPECT_EQ(accel.set_calls(), 4u);
  // The original was recorded once, before the first cap, and never replaced by a cap.
  const std::string recorded =
      "{\"GPU-a\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-warm\"}}\n";
  EXPECT_EQ(records, (std::vector<std::string>{recorded, recorded, recorded, recorded}));
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

TEST(PolicyEngine, CapPowerAHigherCapLeavesTheLowerOneInForce) {
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(policy_of(two_caps(200, 300)));
  Slots s;
  auto t = std::chrono::steady_clock::now();
  ASSERT_TRUE(step(io, engine, s, 82, t, 1));       // gpu-warm: 200 W
  ASSERT_TRUE(step(io, engine, s, 90, t + 1s, 2));  // gpu-hot's 300 W is higher: nothing changes
  EXPECT_EQ(accel.limit(0), 200000u);
  ASSERT_TRUE(step(io, engine, s, 78, t + 2s, 3));  // gpu-hot clears: still gpu-warm's 200 W
  EXPECT_EQ(accel.limit(0), 200000u);
  ASSERT_TRUE(step(io, engine, s, 70, t + 3s, 4));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(cap_outcomes(engine.events()),
            (std::vector<std::string>{
                "gpu-warm: GPU 0 power limit lowered => power limit 200.0 W, was 400.0 W",
                "gpu-hot: GPU 0 power limit unchanged, rule gpu-warm's cap applies => power "
                "limit 200.0 W (gpu-warm)",
                "gpu-hot: GPU 0 power limit unchanged, rule gpu-warm's cap applies => power "
                "limit 200.0 W (gpu-warm)",
                "gpu-warm: GPU 0 power limit restored => power limit 400.0 W"}));
  EXPECT_EQ(accel.set_calls(), 2u);
}

// A GPU whose limit is already below the cap (set so by its operator) is never raised to it.
TEST(PolicyEngine, CapPowerNeverRaisesALimitAlreadyBelowTheCap) {
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 200000);
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(policy_of(kGpuHot));  // caps at 250 W
  Slots s;
  auto t = std::chrono::steady_clock::now();
  ASSERT_TRUE(step(io, engine, s, 90, t, 1));
  EXPECT_EQ(accel.limit(0), 200000u);
  ASSERT_TRUE(step(io, engine, s, 79, t + 1s, 2));
  EXPECT_EQ(accel.limit(0), 200000u);
  EXPECT_EQ(cap_outcomes(engine.events()),
            (std::vector<std::string>{
                "gpu-hot: GPU 0 power limit unchanged, already below the cap => power limit "
                "200.0 W",
                "gpu-hot: GPU 0 power limit restored => power limit 200.0 W"}));
}

// A policy reload keeps the state of a rule it did not change: the cap it holds is restored when
// its condition clears (a reload used to forget that it fired, and the cap stayed until a restart).
TEST(PolicyEngine, CapPowerAReloadKeepsAnUnchangedRulesCapUntilItClears) {
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(policy_of(kGpuHot));
  Slots s;
  auto t = std::chrono::steady_clock::now();
  ASSERT_TRUE(step(io, engine, s, 90, t, 1));
  EXPECT_EQ(accel.limit(0), 250000u);
  engine.apply(policy_of(std::string(kGpuHot) + "# reloaded\n"));
  ASSERT_TRUE(step(io, engine, s, 90, t + 1s, 1));  // still hot: not capped again
  EXPECT_EQ(cap_outcomes(engine.events()).size(), 1u);
  ASSERT_TRUE(step(io, engine, s, 79, t + 2s, 2)) << "the reloaded rule never cleared";
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(cap_outcomes(engine.events()).back(),
            "gpu-hot: GPU 0 power limit restored => power limit 400.0 W");
}

// A reload that removes (or changes) a rule holding a cap lets go of the cap at once.
TEST(PolicyEngine, CapPowerAReloadWithoutTheRuleRestoresAtOnce) {
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(policy_of(two_caps(300, 250)));
  Slots s;
  auto t = std::chrono::steady_clock::now();
  ASSERT_TRUE(step(io, engine, s, 90, t, 2));  // both fire: gpu-hot's 250 W applies
  EXPECT_EQ(accel.limit(0), 250000u);
  engine.apply(policy_of(two_caps(300, 200).substr(0, two_caps(300, 200).find("[[limit]]", 1)) +
                         "[events]\nburst = 100\n"));  // gpu-hot removed
  ASSERT_TRUE(run_until(io, [&] { return cap_outcomes(engine.events()).size() >= 3; }));
  EXPECT_EQ(accel.limit(0), 300000u);  // gpu-warm's cap, unchanged, still holds
  ASSERT_TRUE(step(io, engine, s, 70, t + 1s, 4));
  EXPECT_EQ(accel.limit(0), 400000u);
}

TEST(PolicyEngine, CapPowerOneRuleOnTwoSeriesOfOneGpuHoldsItsCapUntilBothClear) {
  // A rule matching two series of one GPU holds a cap for each of them.
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  asio::io_context io;
  PolicyEngine engine(io, options({}, &accel));
  engine.apply(
      policy_of("[[limit]]\nname = \"gpu-hot\"\nmetric = \"DCGM_FI_DEV_GPU_TEMP\"\nabove = 85\n"
                "clear = 80\naction = \"cap_power\"\npower_limit = 250\n[events]\nburst = 100\n"));
  Slots s;
  // Both series are GPU-a's (as its core and memory temperatures would be).
  s.catalog->series[1].labels = {{"gpu", "0"}, {"sensor", "memory"}, {"UUID", "GPU-a"}};
  auto t = std::chrono::steady_clock::now();
  s.set(90, 40, 0);
  engine.evaluate(s.slots, t);
  ASSERT_TRUE(run_until(io, [&] { return cap_outcomes(engine.events()).size() >= 1; }));
  s.set(90, 90, 0);
  engine.evaluate(s.slots, t + 1s);
  ASSERT_TRUE(run_until(io, [&] { return cap_outcomes(engine.events()).size() >= 2; }));
  s.set(70, 90, 0);  // the first series clears; the second still holds the cap
  engine.evaluate(s.slots, t + 2s);
  ASSERT_TRUE(run_until(io, [&] { return cap_outcomes(engine.events()).size() >= 3; }));
  EXPECT_EQ(accel.limit(0), 250000u);
  s.set(70, 70, 0);
  engine.evaluate(s.slots, t + 3s);
  ASSERT_TRUE(run_until(io, [&] { return cap_outcomes(engine.events()).size() >= 4; }));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(cap_outcomes(engine.events()).back(),
            "gpu-hot: GPU 0 power limit restored => power limit 400.0 W");
}

TEST(PolicyEngine, CapPowerARestartWhileTwoRulesHoldCapsRestoresTheOriginal) {
  TempDir dir;
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 400000);
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  Slots s;
  auto t = std::chrono::steady_clock::now();
  {
    asio::io_context io;
    PolicyEngine engine(io, o);
    engine.load();
    engine.apply(policy_of(two_caps(300, 250)));
    ASSERT_TRUE(step(io, engine, s, 82, t, 1));
    ASSERT_TRUE(step(io, engine, s, 90, t + 1s, 2));
    EXPECT_EQ(accel.limit(0), 250000u);
    engine.stop();  // stopped while both hold their caps
  }
  EXPECT_EQ(read_text(dir / "power-caps.json"),
            "{\"GPU-a\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-warm\"}}\n");
  // Still hot for one rule after the restart: it caps from the recorded original, and when it
  // clears, the original (not the other rule's cap, nor the last run's) comes back.
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(two_caps(300, 250)));
  ASSERT_TRUE(step(io, engine, s, 82, t + 2s, 1));
  EXPECT_EQ(accel.limit(0), 300000u);
  EXPECT_EQ(cap_outcomes(engine.events())[0],
            "gpu-warm: GPU 0 power limit lowered => power limit 300.0 W, was 400.0 W");
  ASSERT_TRUE(step(io, engine, s, 70, t + 3s, 2));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(find_event(engine.events(), "gpu-warm", "last stopped"), nullptr);
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

TEST(PolicyEngine, CapPowerRestoresARenumberedGpuByItsUuid) {
  TempDir dir;
  // Before the reboot GPU-b was GPU 0 and was capped; now a GPU-a sits before it, so GPU-b is
  // GPU 1. (The samples of Slots agree: gpu 0 is GPU-a, gpu 1 is GPU-b.)
  write(dir / "power-caps.json",
        "{\"GPU-b\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 350000);
  accel.set_uuid(1, "GPU-b");
  accel.set_limit(1, 250000);
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(70, 70, 0);
  engine.evaluate(s.slots, std::chrono::steady_clock::now());
  ASSERT_TRUE(
      run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "last stopped"); }));
  const PolicyEvent* e = find_event(engine.events(), "gpu-hot", "last stopped");
  EXPECT_EQ(e->subject, "GPU 1 (GPU-b)");
  EXPECT_EQ(e->result, "power limit 400.0 W");
  EXPECT_EQ(accel.limit(1), 400000u);
  EXPECT_EQ(accel.limit(0), 350000u);  // not the GPU that is number 0 now
  EXPECT_EQ(accel.set_calls(), 1u);
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

TEST(PolicyEngine, CapPowerRecordedGpuNoLongerPresentIsAnEventAndKeepsItsRecord) {
  TempDir dir;
  const std::string record =
      "{\"GPU-gone\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n";
  write(dir / "power-caps.json", record);
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 350000);
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(70, 70, 0);
  auto t = std::chrono::steady_clock::now();
  engine.evaluate(s.slots, t);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "not present"); }));
  const PolicyEvent* e = find_event(engine.events(), "gpu-hot", "not present");
  EXPECT_EQ(e->subject, "GPU-gone");
  EXPECT_EQ(e->severity, Severity::warning);
  EXPECT_EQ(e->result, "failed: GPU-gone: no such GPU now (1 found; it was GPU 0): No such device");
  EXPECT_EQ(accel.set_calls(), 0u);  // nothing restored onto another GPU
  EXPECT_EQ(accel.limit(0), 350000u);
  // Told once per run; the record stays for the next start.
  engine.evaluate(s.slots, t + 1s);
  run_until(
      io, [] { return false; }, 100ms);
  EXPECT_EQ(cap_outcomes(engine.events()).size(), 1u);
  EXPECT_EQ(read_text(dir / "power-caps.json"), record);
  // A cap of this run on another GPU writes the record again, the absent GPU's with it.
  s.set(90, 70, 0);
  engine.evaluate(s.slots, t + 2s);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "lowered"); }));
  EXPECT_EQ(read_text(dir / "power-caps.json"),
            "{\"GPU-a\":{\"gpu\":0,\"original_mw\":350000,\"rule\":\"gpu-hot\"},"
            "\"GPU-gone\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
}

TEST(PolicyEngine, CapPowerConvertsThePreviousVersionsRecordByIndex) {
  TempDir dir;
  // The previous version keyed the record by index: GPU 1 (GPU-b here) and a GPU 5 that is
  // not there now.
  write(dir / "power-caps.json",
        "{\"1\":{\"original_mw\":400000,\"rule\":\"gpu-hot\"},"
        "\"5\":{\"original_mw\":300000,\"rule\":\"gpu-hot\"}}\n");
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 350000);
  accel.set_uuid(1, "GPU-b");
  accel.set_limit(1, 250000);
  // The restore is refused: the record stays, now in the new form.
  accel.fail_with(platform::Error{std::make_error_code(std::errc::operation_not_permitted),
                                  "needs root or CAP_SYS_ADMIN"});
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  {
    asio::io_context io;
    PolicyEngine engine(io, o);
    engine.load();
    engine.apply(policy_of(kGpuHot));
    Slots s;
    s.set(70, 70, 0);
    engine.evaluate(s.slots, std::chrono::steady_clock::now());
    ASSERT_TRUE(run_until(io, [&] { return cap_outcomes(engine.events()).size() >= 2; }));
    const PolicyEvent* gone = find_event(engine.events(), "gpu-hot", "no GPU 5");
    ASSERT_NE(gone, nullptr);
    EXPECT_EQ(gone->subject, "GPU 5");
    EXPECT_EQ(gone->severity, Severity::warning);
    const PolicyEvent* refused = find_event(engine.events(), "gpu-hot", "GPU-b");
    ASSERT_NE(refused, nullptr);
    EXPECT_EQ(refused->result, "failed: needs root or CAP_SYS_ADMIN: Operation not permitted");
    EXPECT_EQ(read_text(dir / "power-caps.json"),
              "{\"GPU-b\":{\"gpu\":1,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
    engine.stop();
  }
  // The next start reads the new form and restores GPU-b.
  accel.fail_with(std::nullopt);
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(70, 70, 0);
  engine.evaluate(s.slots, std::chrono::steady_clock::now());
  ASSERT_TRUE(
      run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "last stopped"); }));
  EXPECT_EQ(accel.limit(1), 400000u);
  EXPECT_EQ(accel.limit(0), 350000u);
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

TEST(PolicyEngine, CapPowerRecordOfThePreviousVersionTakenOverByAFiringRule) {
  TempDir dir;
  write(dir / "power-caps.json", "{\"0\":{\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
  testing::FakeAcceleratorControl accel;
  accel.set_uuid(0, "GPU-a");
  accel.set_limit(0, 250000);  // the previous version's cap
  auto o = options({}, &accel);
  o.state_dir = dir.path();
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  engine.apply(policy_of(kGpuHot));
  Slots s;
  s.set(90, 40, 0);
  auto t = std::chrono::steady_clock::now();
  engine.evaluate(s.slots, t);  // hot at once: the cap takes the converted record over
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "lowered"); }));
  EXPECT_EQ(find_event(engine.events(), "gpu-hot", "lowered")->result,
            "power limit 250.0 W, was 400.0 W");
  EXPECT_EQ(read_text(dir / "power-caps.json"),
            "{\"GPU-a\":{\"gpu\":0,\"original_mw\":400000,\"rule\":\"gpu-hot\"}}\n");
  s.set(70, 40, 0);
  engine.evaluate(s.slots, t + 1s);
  ASSERT_TRUE(run_until(io, [&] { return find_event(engine.events(), "gpu-hot", "restored"); }));
  EXPECT_EQ(accel.limit(0), 400000u);
  EXPECT_EQ(find_event(engine.events(), "gpu-hot", "last stopped"), nullptr);
  EXPECT_EQ(read_text(dir / "power-caps.json"), "{}\n");
}

// ---- bundles through the engine: directory, key, rollback, last good kept

TEST(PolicyEngine, BundleDirectoryAppliesNewerAndRefusesRollbackAndBadSignatures) {
  TempDir dir;
  auto random = std::move(*crypto::Random::create("policy engine test"));
  auto key = *crypto::PrivateKey::generate(*random);
  auto stranger = *crypto::PrivateKey::generate(*random);
  write(dir / "key.pem", *key.public_key().to_pem());
  ::mkdir((dir / "bundles").c_str(), 0755);
  ::mkdir((dir / "state").c_str(), 0700);
  PolicyEngine::Options o;
  o.bundle_dir = dir / "bundles";
  o.policy_key = dir / "key.pem";
  o.state_dir = dir / "state";
  o.bundle_interval = 3600s;  // scanned by hand
  {
    asio::io_context io;
    PolicyEngine engine(io, o);
    engine.load();
    EXPECT_EQ(engine.policy().source, "built-in default");
    write(dir / "bundles/a.bundle", *make_bundle("[policy]\nversion = 5\n", key, *random));
    engine.scan_bundles_now();
    ASSERT_TRUE(run_until(io, [&] { return engine.policy().version == 5; }));
    EXPECT_EQ(engine.policy().source, "bundle " + (dir / "bundles/a.bundle"));
    EXPECT_NE(find_event(engine.events(), "policy", "applied"), nullptr);

    write(dir / "bundles/b.bundle", *make_bundle("[policy]\nversion = 4\n", key, *random));
    write(dir / "bundles/c.bundle", *make_bundle("[policy]\nversion = 9\n", stranger, *random));
    write(dir / "bundles/d.bundle", "gridnode-policy-bundle 1\ngarbage");
    write(dir / "bundles/e.bundle", "[policy]\nversion = 10\n");  // unsigned
    engine.scan_bundles_now();
    ASSERT_TRUE(run_until(io, [&] {
      int n = 0;
      for (const auto& e : engine.events().recent()) {
        n += e.rule == "policy" && e.result == "rejected";
      }
      return n == 4;
    }));
    EXPECT_EQ(engine.policy().version, 5u);  // the last good one stays
    EXPECT_NE(find_event(engine.events(), "policy", "rollback"), nullptr);
    EXPECT_NE(find_event(engine.events(), "policy", "does not verify"), nullptr);
    run_until(io, [&] { return false; }, 100ms);  // the kept copy is written on the worker
    engine.stop();
  }
  // A restart starts from the kept bundle, not from the default: no rollback by reboot.
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  EXPECT_EQ(engine.policy().version, 5u);
  EXPECT_TRUE(engine.policy().source.starts_with("bundle "));
}

// The uplink's path (a collector's push): the same rules, an answer for each offer, and the
// collector named as the source.
TEST(PolicyEngine, OfferedBundlesAreAnsweredAndNamedByTheirCollector) {
  TempDir dir;
  auto random = std::move(*crypto::Random::create("policy engine test"));
  auto key = *crypto::PrivateKey::generate(*random);
  auto stranger = *crypto::PrivateKey::generate(*random);
  write(dir / "key.pem", *key.public_key().to_pem());
  ::mkdir((dir / "state").c_str(), 0700);
  PolicyEngine::Options o;
  o.policy_key = dir / "key.pem";
  o.state_dir = dir / "state";
  asio::io_context io;
  PolicyEngine engine(io, o);
  engine.load();
  std::vector<PolicyEngine::BundleOutcome> answers;
  auto offer = [&](std::string bytes) {
    const std::size_t before = answers.size();
    engine.offer_bundle(std::move(bytes), "uplink 127.0.0.1:4443",
                        [&](const PolicyEngine::BundleOutcome& a) { answers.push_back(a); });
    EXPECT_TRUE(run_until(io, [&] { return answers.size() == before + 1; }));
    return answers.back();
  };
  using R = PolicyEngine::BundleOutcome::Result;
  const std::string v2 = *make_bundle("[policy]\nversion = 2\n", key, *random);
  auto a = offer(v2);
  EXPECT_EQ(a.result, R::applied);
  EXPECT_EQ(engine.policy().version, 2u);
  EXPECT_EQ(engine.policy().source, "uplink 127.0.0.1:4443");
  EXPECT_EQ(offer(v2).result, R::in_force);  // the same again: nothing to do, no event

  a = offer(*make_bundle("[policy]\nversion = 1\n", key, *random));
  EXPECT_EQ(a.result, R::refused);
  EXPECT_NE(a.reason.find("version 1 is not newer than version 2 in force (rollback)"),
            std::string::npos)
      << a.reason;
  a = offer(*make_bundle("[policy]\nversion = 3\n", stranger, *random));
  EXPECT_EQ(a.result, R::refused);
  EXPECT_NE(a.reason.find("uplink 127.0.0.1:4443: signature does not verify"), std::string::npos)
      << a.reason;
  EXPECT_EQ(offer("\x01\x02 not a bundle").result, R::refused);
  EXPECT_EQ(offer("[policy]\nversion = 9\n").result, R::refused);  // unsigned
  EXPECT_EQ(engine.policy().version, 2u);
  int rejected = 0;
  for (const auto& e : engine.events().recent()) {
    rejected += e.rule == "policy" && e.result == "rejected";
  }
  EXPECT_EQ(rejected, 4);
  // SIGHUP does not swap a pushed policy for the local file.
  engine.reload();
  run_until(io, [&] { return false; }, 100ms);
  EXPECT_EQ(engine.policy().source, "uplink 127.0.0.1:4443");
  engine.stop();

  // No [policy] key: every pushed bundle is refused, and the event says why.
  asio::io_context io2;
  PolicyEngine keyless(io2, PolicyEngine::Options{});
  keyless.load();
  std::optional<PolicyEngine::BundleOutcome> answer;
  keyless.offer_bundle(v2, "uplink 127.0.0.1:4443",
                       [&](const PolicyEngine::BundleOutcome& x) { answer = x; });
  ASSERT_TRUE(run_until(io2, [&] { return answer.has_value(); }));
  EXPECT_EQ(answer->result, R::refused);
  EXPECT_NE(answer->reason.find("no policy key is configured"), std::string::npos);
  const PolicyEvent* e = find_event(keyless.events(), "policy", "no policy key");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(keyless.policy().source, "built-in default");
}

TEST(PolicyEngine, BadPolicyFileKeepsTheDefaultAndRaisesAnEvent) {
  TempDir dir;
  write(dir / "policy.toml", "[policy]\nversion = 1\n[[limit]]\nname = 3\n");
  asio::io_context io;
  PolicyEngine engine(io, options({}, nullptr, dir / "policy.toml"));
  engine.load();
  EXPECT_EQ(engine.policy().source, "built-in default");
  const PolicyEvent* e = find_event(engine.events(), "policy", "rejected");
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->details.find("policy.toml:4: limit.name"), std::string::npos) << e->details;
  // A good file on reload applies; a bad one after it is ignored.
  write(dir / "policy.toml", "[policy]\nversion = 2\n");
  engine.reload();
  ASSERT_TRUE(run_until(io, [&] { return engine.policy().version == 2; }));
  write(dir / "policy.toml", "[policy\n");
  engine.reload();
  ASSERT_TRUE(run_until(io, [&] {
    int n = 0;
    for (const auto& x : engine.events().recent()) {
      n += x.rule == "policy";
    }
    return n == 2;
  }));
  EXPECT_EQ(engine.policy().version, 2u);
}

}  // namespace
}  // namespace gridnode::agent
