#include "gridnode/collector/write_request.hpp"

#include <gtest/gtest.h>
#include <snappy-c.h>

#include <map>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "remote_write.pb-c.h"

namespace gridnode::collector {
namespace {

// A report line as RecordWriter writes it (docs/collector.md), with a GPU series whose own
// "instance" label meets the node's, and three events.
std::string report_line(std::uint64_t seq, std::uint64_t time_ns, const std::string& temp) {
  return R"({"type":"report","node":"node-1","seq":)" + std::to_string(seq) +
         R"(,"boot_id":"00000000-0000-0000-0000-000000000000","time":"x","time_ns":)" +
         std::to_string(time_ns) +
         R"(,"labels":{"rack":"r12","region":"east"},"keyframe":true,"digest":"ab","prev":"cd",)"
         R"("catalog":"ef","verified_by":5,"received_ns":1,"events":[)"
         R"({"kind":"limit","severity":4,"source":"s","message":"m","fields":{"a":"b"}},)"
         R"({"kind":"limit","severity":4,"source":"s","message":"m2","fields":{}},)"
         R"({"kind":"integrity","severity":2,"source":"s","message":"m3","fields":{}}],)"
         R"("metrics":[{"name":"node_hwmon_temp_celsius","labels":{"chip":"platform_coretemp_0",)"
         R"("sensor":"temp1"},"value":)" +
         temp +
         R"(},{"name":"node_load1","labels":{},"value":0.52},)"
         R"({"name":"DCGM_FI_DEV_GPU_TEMP","labels":{"UUID":"GPU-1","gpu":"0","instance":"x"},)"
         R"("value":61}],"raw":"AAAA"})";
}

struct Decoded {
  // labels as "a=b,c=d" (in the order sent) -> samples (ms, value)
  std::map<std::string, std::vector<std::pair<std::int64_t, double>>> series;
  std::vector<std::string> order;
  bool sorted = true;
};

Decoded decode(const std::string& compressed) {
  std::size_t length = 0;
  EXPECT_EQ(snappy_uncompressed_length(compressed.data(), compressed.size(), &length), SNAPPY_OK);
  std::string packed(length, '\0');
  EXPECT_EQ(snappy_uncompress(compressed.data(), compressed.size(), packed.data(), &length),
            SNAPPY_OK);
  Prometheus__WriteRequest* req = prometheus__write_request__unpack(
      nullptr, length, reinterpret_cast<const std::uint8_t*>(packed.data()));
  Decoded d;
  EXPECT_NE(req, nullptr);
  if (req == nullptr) {
    return d;
  }
  for (std::size_t i = 0; i < req->n_timeseries; ++i) {
    const auto* ts = req->timeseries[i];
    std::string key;
    for (std::size_t j = 0; j < ts->n_labels; ++j) {
      if (j > 0) {
        key += ',';
        d.sorted = d.sorted && std::string(ts->labels[j - 1]->name) < ts->labels[j]->name;
      }
      key += std::string(ts->labels[j]->name) + "=" + ts->labels[j]->value;
    }
    d.order.push_back(key);
    for (std::size_t j = 0; j < ts->n_samples; ++j) {
      d.series[key].emplace_back(ts->samples[j]->timestamp, ts->samples[j]->value);
    }
  }
  prometheus__write_request__free_unpacked(req, nullptr);
  return d;
}

constexpr std::uint64_t kT1 = 1795586100123456789ULL;
constexpr std::uint64_t kT2 = 1795586100223999999ULL;

TEST(WriteRequestBuilder, ReportBecomesSortedSeriesWithNodeLabelsAndExactValues) {
  WriteRequestBuilder b;
  ASSERT_EQ(b.add_line(report_line(1, kT1, "45")).value(), 5u);  // 3 metrics, 2 event kinds
  ASSERT_EQ(b.add_line(report_line(2, kT2, "45.5")).value(), 5u);
  EXPECT_EQ(b.samples(), 10u);
  EXPECT_EQ(b.series(), 5u);
  EXPECT_EQ(b.min_time_ms(), 1795586100123);
  EXPECT_EQ(b.max_time_ms(), 1795586100223);
  std::string body;
  b.finish(body);
  const Decoded d = decode(body);
  EXPECT_TRUE(d.sorted);
  using Samples = std::vector<std::pair<std::int64_t, double>>;
  EXPECT_EQ(d.series.at("__name__=node_hwmon_temp_celsius,chip=platform_coretemp_0,"
                        "instance=node-1,job=gridnode,rack=r12,region=east,sensor=temp1"),
            (Samples{{1795586100123, 45.0}, {1795586100223, 45.5}}));
  EXPECT_EQ(d.series.at("__name__=node_load1,instance=node-1,job=gridnode,rack=r12,region=east"),
            (Samples{{1795586100123, 0.52}, {1795586100223, 0.52}}));
  // Upper case sorts before "__name__"; the series' own instance is kept as exported_instance.
  EXPECT_EQ(d.series.at("UUID=GPU-1,__name__=DCGM_FI_DEV_GPU_TEMP,exported_instance=x,gpu=0,"
                        "instance=node-1,job=gridnode,rack=r12,region=east")
                .size(),
            2u);
  EXPECT_EQ(d.series.at("__name__=gridnode_report_events,instance=node-1,job=gridnode,kind=limit,"
                        "rack=r12,region=east,severity=4"),
            (Samples{{1795586100123, 2.0}, {1795586100223, 2.0}}));
  EXPECT_EQ(d.series.at("__name__=gridnode_report_events,instance=node-1,job=gridnode,"
                        "kind=integrity,rack=r12,region=east,severity=2")
                .size(),
            2u);
}

// RecordWriter's layout is scanned; anything else (here: spaces, an escaped quote) is read by
// the JSON reader, with the same samples.
TEST(WriteRequestBuilder, ScannedAndJsonReadLinesGiveTheSameRequest) {
  const std::string line = report_line(1, kT1, "45");
  std::string spaced = line;
  spaced.replace(spaced.find(",\"metrics\":["), 12, ", \"metrics\" : [");
  std::string escaped = line;
  escaped.replace(escaped.find("\"GPU-1\""), 7, "\"GPU\\u002d1\"");  // "GPU-1", escaped
  WriteRequestBuilder a, b, c;
  ASSERT_TRUE(a.add_line(line));
  ASSERT_TRUE(b.add_line(spaced));
  ASSERT_TRUE(c.add_line(escaped));
  EXPECT_EQ(a.scanned_lines(), 1u);
  EXPECT_EQ(b.scanned_lines(), 0u);
  EXPECT_EQ(c.scanned_lines(), 0u);
  std::string ba, bb, bc;
  a.finish(ba);
  b.finish(bb);
  c.finish(bc);
  EXPECT_EQ(decode(ba).series, decode(bb).series);
  EXPECT_EQ(decode(ba).series, decode(bc).series);
  EXPECT_EQ(decode(ba).series.size(), 5u);
}

TEST(WriteRequestBuilder, GapBecomesDroppedReportCountAtItsTime) {
  WriteRequestBuilder b("grid-east");
  ASSERT_EQ(b.add_line(R"({"type":"gap","node":"node-1","from_seq":10,"to_seq":14,)"
                       R"("time":"2026-11-25T05:55:00.123456789Z","reason":"spool full","raw":"AA"})")
                .value(),
            1u);
  std::string body;
  b.finish(body);
  const Decoded d = decode(body);
  EXPECT_EQ(d.series.at("__name__=gridnode_report_gap,instance=node-1,job=grid-east"),
            (std::vector<std::pair<std::int64_t, double>>{{1795586100123, 5.0}}));
}

TEST(WriteRequestBuilder, CatalogLinesAddNothingAndGarbageIsRefused) {
  WriteRequestBuilder b;
  EXPECT_EQ(b.add_line(R"({"type":"catalog","node":"node-1","digest":"ab","raw":"AA"})").value(),
            0u);
  EXPECT_FALSE(b.add_line("not json"));
  EXPECT_FALSE(b.add_line(R"({"type":"report","node":"n","metrics":[]})"));  // no time_ns
  EXPECT_FALSE(b.add_line(R"(["type","report"])"));
  EXPECT_FALSE(b.add_line(R"({"type":"gap","node":"n","time":"yesterday"})"));
  EXPECT_EQ(b.samples(), 0u);
}

TEST(WriteRequestBuilder, ClearStartsTheNextBatchAndKeepsNothingOfTheLast) {
  WriteRequestBuilder b;
  ASSERT_TRUE(b.add_line(report_line(1, kT1, "45")));
  b.clear();
  ASSERT_TRUE(b.add_line(report_line(2, kT2, "46")));
  std::string body;
  b.finish(body);
  const Decoded d = decode(body);
  EXPECT_EQ(d.series.size(), 5u);
  for (const auto& [key, samples] : d.series) {
    EXPECT_EQ(samples.size(), 1u) << key;
    EXPECT_EQ(samples[0].first, 1795586100223) << key;
  }
}

// A report line with `n` hwmon series, as a large host sends.
std::string wide_line(std::uint64_t time_ns, int n) {
  std::string l = R"({"type":"report","node":"node-7","seq":1,"time_ns":)" + std::to_string(time_ns) +
                  R"(,"labels":{"rack":"r1"},"events":[],"metrics":[)";
  for (int i = 0; i < n; ++i) {
    l += (i > 0 ? "," : "") + std::string(R"({"name":"node_hwmon_temp_celsius","labels":{"chip":"c",)") +
         R"("sensor":"temp)" + std::to_string(i) + R"("},"value":)" + std::to_string(40 + i % 9) +
         ".5}";
  }
  return l + R"(],"raw":"AAAA"})";
}

// Steady state (series known, buffers grown): reading a line allocates a few times per line
// (nlohmann's lexer and parser state), not per sample; packing allocates nothing but snappy's
// own hash table.
TEST(WriteRequestBuilder, SteadyStateAllocatesPerLineNotPerSample) {
  WriteRequestBuilder b;
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) {
    lines.push_back(wide_line(kT1 + i * 100000000ULL, 200));
  }
  std::string body;
  for (int round = 0; round < 2; ++round) {
    b.clear();
    for (const auto& l : lines) {
      ASSERT_TRUE(b.add_line(l));
    }
    b.finish(body);
  }
  testing::AllocationCounter counter;
  b.clear();
  counter.start();
  for (const auto& l : lines) {
    (void)b.add_line(l);
  }
  const std::size_t reading = counter.stop();
  counter.start();
  b.finish(body);
  const std::size_t packing = counter.stop();
  EXPECT_EQ(b.samples(), 4000u);
  EXPECT_LE(packing, 1u);
  EXPECT_LE(reading, lines.size() * 20) << "allocations for " << b.samples() << " samples";
}

}  // namespace
}  // namespace gridnode::collector
