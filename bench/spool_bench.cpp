// The spool's cost per report, against the system calls it is made of, in the same run:
//   BM_WriteBaseline        write(2) of 322 bytes (a 300-byte report plus the spool's 22-byte
//                           record header) to an append-only file: the floor for append()
//   BM_SpoolAppend          Spool::append of a 300-byte report, no fsync (the agent's path)
//   BM_WriteFsyncBaseline   write(2) + fdatasync(2) of the same 322 bytes
//   BM_SpoolAppendFlush     Spool::append + Spool::flush() for every record (fsync_every = 1)
//   BM_SpoolRead            Spool::read of a 64 KiB batch (about 200 reports), as the uplink does
//   BM_SpoolOpen            recovery of a 64 MiB spool: scan and checksum every record
// Appends acknowledge every 1024 reports, so whole segments are deleted as in steady state and
// the disk use stays flat. The files go to $GRIDNODE_BENCH_DIR (default: a new directory under
// $TMPDIR or /tmp): point it at the file system the agent's state directory will live on, since
// fsync figures are the disk's, not ours. Run with --benchmark_repetitions=5 for medians.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gridnode/agent/spool.hpp"
#include "gridnode/platform/log.hpp"

namespace gridnode {
namespace {

constexpr std::size_t kReport = 300;

// The spool logs each open at notice; a benchmark opens hundreds.
void quiet() { platform::Log::set_threshold(platform::Level::warning); }

// A fresh directory under $GRIDNODE_BENCH_DIR (or $TMPDIR, or /tmp), removed at the end.
class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("GRIDNODE_BENCH_DIR");
    if (base == nullptr || *base == '\0') {
      base = std::getenv("TMPDIR");
    }
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/gn-spool-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

protocol::Bytes report_bytes() {
  protocol::Bytes b(kReport);
  for (std::size_t i = 0; i < b.size(); ++i) {
    b[i] = static_cast<std::uint8_t>(i * 131 + 17);
  }
  return b;
}

void write_baseline(benchmark::State& state, bool sync) {
  quiet();
  BenchDir dir;
  const std::string path = dir.path() + "/baseline";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    state.SkipWithError("open");
    return;
  }
  protocol::Bytes record(kReport + agent::spool_format::kRecordOverhead, 0x5a);
  std::uint64_t size = 0;
  for (auto _ : state) {
    if (::write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size())) {
      state.SkipWithError("write");
      break;
    }
    if (sync && ::fdatasync(fd) != 0) {
      state.SkipWithError("fdatasync");
      break;
    }
    size += record.size();
    if (size >= (std::uint64_t{4} << 20)) {
      // A new file every 4 MiB, as the spool starts a segment and deletes an old one.
      ::close(fd);
      ::unlink(path.c_str());
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      size = 0;
    }
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(record.size()));
}

void spool_append(benchmark::State& state, bool flush_each) {
  quiet();
  BenchDir dir;
  agent::SpoolOptions o;
  o.fsync_every = flush_each ? 1 : 0;
  auto opened = agent::Spool::open(dir.path(), o);
  if (!opened) {
    state.SkipWithError(opened.error().message().c_str());
    return;
  }
  agent::Spool& spool = **opened;
  protocol::Bytes catalog(4096, 1);
  protocol::Bytes report = report_bytes();
  std::uint64_t seq = 1;
  if (!spool.append(catalog, report, seq++)) {
    state.SkipWithError("append");
    return;
  }
  for (auto _ : state) {
    if (!spool.append({}, report, seq)) {
      state.SkipWithError("append");
      break;
    }
    if (flush_each && !spool.flush()) {
      state.SkipWithError("flush");
      break;
    }
    if (seq % 1024 == 0) {
      state.PauseTiming();
      if (!spool.ack(seq - 512)) {
        state.SkipWithError("ack");
      }
      state.ResumeTiming();
    }
    ++seq;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kReport));
  state.counters["segments"] = static_cast<double>(spool.stats().segments);
}

void BM_WriteBaseline(benchmark::State& state) { write_baseline(state, false); }
void BM_SpoolAppend(benchmark::State& state) { spool_append(state, false); }
void BM_WriteFsyncBaseline(benchmark::State& state) { write_baseline(state, true); }
void BM_SpoolAppendFlush(benchmark::State& state) { spool_append(state, true); }

// A spool of `bytes` of 300-byte reports in `dir`.
bool fill(const std::string& dir, std::uint64_t bytes, std::uint64_t& reports) {
  agent::SpoolOptions o;
  auto opened = agent::Spool::open(dir, o);
  if (!opened) {
    return false;
  }
  protocol::Bytes catalog(4096, 1);
  protocol::Bytes report = report_bytes();
  reports = bytes / (kReport + agent::spool_format::kRecordOverhead);
  for (std::uint64_t seq = 1; seq <= reports; ++seq) {
    if (!(*opened)->append(seq == 1 ? catalog : protocol::Bytes{}, report, seq)) {
      return false;
    }
  }
  return (*opened)->close().has_value();
}

void BM_SpoolRead(benchmark::State& state) {
  quiet();
  BenchDir dir;
  std::uint64_t reports = 0;
  if (!fill(dir.path(), std::uint64_t{16} << 20, reports)) {
    state.SkipWithError("fill");
    return;
  }
  auto spool = agent::Spool::open(dir.path(), {});
  if (!spool) {
    state.SkipWithError("open");
    return;
  }
  std::vector<agent::SpoolRecord> batch;
  std::uint64_t cursor = 0;
  std::int64_t records = 0;
  for (auto _ : state) {
    if (!(*spool)->read(cursor, 64 << 10, batch)) {
      state.SkipWithError("read");
      break;
    }
    records += static_cast<std::int64_t>(batch.size());
    cursor = batch.empty() || batch.back().seq >= reports ? 0 : batch.back().seq;
  }
  state.SetItemsProcessed(records);
}

void BM_SpoolOpen(benchmark::State& state) {
  quiet();
  BenchDir dir;
  std::uint64_t reports = 0;
  if (!fill(dir.path(), std::uint64_t{64} << 20, reports)) {
    state.SkipWithError("fill");
    return;
  }
  for (auto _ : state) {
    auto spool = agent::Spool::open(dir.path(), {});
    if (!spool || (*spool)->stats().reports != reports) {
      state.SkipWithError("open");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * (std::int64_t{64} << 20));
  state.counters["reports"] = static_cast<double>(reports);
}

BENCHMARK(BM_WriteBaseline);
BENCHMARK(BM_SpoolAppend);
BENCHMARK(BM_WriteFsyncBaseline)->Iterations(2000);
BENCHMARK(BM_SpoolAppendFlush)->Iterations(2000);
BENCHMARK(BM_SpoolRead);
BENCHMARK(BM_SpoolOpen)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gridnode
