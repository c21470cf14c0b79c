// kill -9 at any instant: a child process appends to the spool as fast as it can and is killed
// with SIGKILL at a random moment; the parent reopens the spool and checks that it recovered a
// gapless prefix of what the child wrote, every record intact, and that appending goes on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "gridnode/agent/spool.hpp"
#include "temp_dir.hpp"

namespace gridnode::agent {
namespace {

using protocol::Bytes;
using protocol::FrameKind;

// Small reports, or large ones (0.25 … 1.25 MiB): a write that large is interrupted by SIGKILL
// between pages, which leaves a real torn record behind.
Bytes payload_for(std::uint64_t seq, bool large) {
  Bytes b(large ? (256 << 10) + (seq * 7919) % (1 << 20) : 120 + (seq * 37) % 300);
  // Eight bytes per step, so that the child spends its time writing rather than here.
  std::uint64_t x = seq * 0x9E3779B97F4A7C15ull;
  for (std::size_t i = 0; i < b.size(); i += 8) {
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    std::memcpy(&b[i], &x, std::min<std::size_t>(8, b.size() - i));
  }
  return b;
}

Bytes catalog() { return Bytes(900, 0x42); }

SpoolOptions options(bool with_acks, bool large) {
  SpoolOptions o;
  o.max_bytes = (large ? std::uint64_t{2048} : std::uint64_t{64}) << 20;  // never reached
  o.segment_bytes = large ? 4 << 20 : 64 << 10;                           // many rolls per round
  // Syncing matters for power cuts, not for kill -9; with large reports it would only keep
  // the child in fdatasync instead of in the writes we want to interrupt.
  o.fsync_every = large ? 0 : 64;
  o.fsync_interval = large ? std::chrono::milliseconds(3600000) : std::chrono::milliseconds(2);
  o.ack_interval = std::chrono::milliseconds(with_acks ? 1 : 1000);
  return o;
}

// The child: reopen (recovering whatever the last kill left), then append from newest + 1 on,
// telling the parent each seq once append() has returned, flushing when due, until killed.
[[noreturn]] void child(const std::string& state, int out, bool with_acks, bool large) {
  auto opened = Spool::open(state, options(with_acks, large));
  if (!opened) {
    ::_exit(2);
  }
  Spool& spool = **opened;
  const std::uint64_t ready[2] = {0, 0};
  if (::write(out, ready, sizeof ready) != sizeof ready) {
    ::_exit(5);
  }
  std::uint64_t seq = spool.stats().newest_seq + 1;
  for (;; ++seq) {
    Bytes p = payload_for(seq, large);
    Bytes cat = seq == 1 ? catalog() : Bytes{};
    if (!spool.append(cat, p, seq)) {
      ::_exit(3);
    }
    std::uint64_t msg[2] = {seq, 0};
    if (with_acks && seq % 50 == 0 && seq > 300) {
      if (!spool.ack(seq - 300)) {
        ::_exit(4);
      }
      msg[1] = seq - 300;
    }
    if (::write(out, msg, sizeof msg) != sizeof msg) {
      ::_exit(5);
    }
    if (spool.flush_due() && !spool.flush()) {
      ::_exit(6);
    }
  }
}

void run_rounds(bool with_acks, int rounds, bool large = false) {
  testing::TempDir dir;
  std::mt19937 rng(with_acks ? 1234 : 4321);  // the kill moments vary; the test's choices don't
  std::uint64_t reported = 0;                 // highest seq the child said was appended
  std::uint64_t reported_ack = 0;
  std::uint64_t total_cut = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      child(dir.path(), fds[1], with_acks, large);
    }
    ::close(fds[1]);
    std::uint64_t msg[2];
    // Most rounds let the child finish its recovery first, so that the kill lands in the
    // appends; every fourth may kill it while it recovers.
    if (round % 4 != 3) {
      ASSERT_EQ(::read(fds[0], msg, sizeof msg), static_cast<ssize_t>(sizeof msg));
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(large ? rng() % 8000 : 1000 + rng() % 30000));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    while (::read(fds[0], msg, sizeof msg) == sizeof msg) {
      reported = std::max(reported, msg[0]);
      reported_ack = std::max(reported_ack, msg[1]);
    }
    ::close(fds[0]);

    auto spool = Spool::open(dir.path(), options(with_acks, large));
    ASSERT_TRUE(spool.has_value()) << spool.error().message();
    auto st = (*spool)->stats();
    total_cut += st.bytes_cut;
    EXPECT_EQ(st.bytes_skipped, 0u) << "round " << round;
    // Nothing that append() returned for is lost.
    ASSERT_GE(st.newest_seq, reported) << "round " << round;
    // The child acks newest - 300 every 50 reports, after the append returned: the largest ack
    // it can have made. Segment deletion follows that in-memory ack; the file lags behind it.
    std::uint64_t could_ack = 0;
    if (with_acks && st.newest_seq > 300) {
      could_ack = st.newest_seq / 50 * 50 - 300;
    }
    ASSERT_LE(st.acked_seq, could_ack);
    ASSERT_GE(could_ack, reported_ack);
    std::vector<SpoolRecord> all;
    ASSERT_TRUE((*spool)->read(st.acked_seq, std::size_t{1} << 30, all).has_value());
    // Killed before its first report landed: an empty spool is the right answer.
    ASSERT_EQ(all.empty(), st.newest_seq == 0) << "round " << round;
    if (all.empty()) {
      Bytes p = payload_for(1, large);
      Bytes cat = catalog();
      ASSERT_TRUE((*spool)->append(cat, p, 1).has_value());
      reported = 1;
      ASSERT_TRUE((*spool)->close().has_value());
      continue;
    }
    EXPECT_EQ(all[0].kind, FrameKind::catalog);
    EXPECT_EQ(all[0].payload, catalog());
    // A gapless run of reports from just after the watermark (or from 1) to the newest one,
    // each exactly as the child wrote it.
    std::uint64_t next = 0;
    for (const auto& r : all) {
      ASSERT_NE(r.kind, FrameKind::gap);
      if (r.kind != FrameKind::report) {
        continue;
      }
      if (next == 0) {
        next = r.seq;
        ASSERT_LE(next, could_ack + 1) << "round " << round;
        if (!with_acks) {
          ASSERT_EQ(next, 1u);
        }
      }
      ASSERT_EQ(r.seq, next) << "round " << round;
      ASSERT_EQ(r.payload, payload_for(r.seq, large)) << "round " << round << " seq " << r.seq;
      ++next;
    }
    ASSERT_EQ(next, st.newest_seq + 1);
    // And appending goes on at newest + 1.
    Bytes p = payload_for(st.newest_seq + 1, large);
    ASSERT_TRUE((*spool)->append({}, p, st.newest_seq + 1).has_value());
    reported = st.newest_seq + 1;
    ASSERT_TRUE((*spool)->close().has_value());
  }
  std::printf("spool crash rounds=%d reports=%llu torn_bytes_cut=%llu\n", rounds,
              static_cast<unsigned long long>(reported),
              static_cast<unsigned long long>(total_cut));
}

TEST(SpoolCrash, KillNineAtAnyInstantLeavesAGaplessPrefix) { run_rounds(false, 12); }

TEST(SpoolCrash, KillNineWithAcksAndSegmentDeletion) { run_rounds(true, 12); }

TEST(SpoolCrash, KillNineMidWriteOfLargeReports) { run_rounds(false, 16, true); }

}  // namespace
}  // namespace gridnode::agent
