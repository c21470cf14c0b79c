#include "gridnode/collector/capacity.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace gridnode::collector {
namespace {

constexpr std::uint64_t kS = 1'000'000'000;
constexpr std::uint64_t kNow = 1'800'000'000 * kS;

std::string summary_line(const std::string& node, const std::string& region, std::uint64_t seq,
                         std::uint64_t time_ns, int total, int busy, int unhealthy,
                         double free_gib, const std::string& model = "NVIDIA A100") {
  nlohmann::json m = nlohmann::json::array({
      {{"name", "gridnode_accelerators"}, {"labels", {{"modelName", model}}}, {"value", total}},
      {{"name", "gridnode_accelerators_busy"}, {"labels", nlohmann::json::object()}, {"value", busy}},
      {{"name", "gridnode_accelerators_unhealthy"}, {"labels", nlohmann::json::object()}, {"value", unhealthy}},
      {{"name", "gridnode_accelerator_memory_free_bytes"}, {"labels", nlohmann::json::object()},
       {"value", free_gib * 1073741824.0}},
      {{"name", "gridnode_accelerator_power_headroom_watts"}, {"labels", nlohmann::json::object()}, {"value", 250.5}},
  });
  return nlohmann::json{{"type", "report"}, {"node", node}, {"seq", seq}, {"time_ns", time_ns},
                        {"labels", {{"region", region}, {"site", "dc1"}}}, {"metrics", m}}
      .dump();
}

TEST(Capacity, ReadsTheSummary) {
  auto c = parse_capacity(summary_line("g1", "east", 7, kNow, 8, 2, 1, 100)).value();
  EXPECT_EQ(c.node, "g1");
  EXPECT_EQ(c.region, "east");
  EXPECT_EQ(c.site, "dc1");
  EXPECT_EQ(c.model, "NVIDIA A100");
  EXPECT_EQ(c.accelerators, 8u);
  EXPECT_EQ(c.busy, 2u);
  EXPECT_EQ(c.idle(), 5u);
  EXPECT_EQ(c.health(), "degraded");
  EXPECT_DOUBLE_EQ(c.memory_free_bytes, 100 * 1073741824.0);
  EXPECT_DOUBLE_EQ(c.power_headroom_watts, 250.5);
  EXPECT_EQ(c.seq, 7u);
}

TEST(Capacity, FallsBackToDcgmExporterSeries) {
  const std::string line = R"({"type":"report","node":"g5","seq":1,"time_ns":1,"labels":{},"metrics":[
    {"name":"DCGM_FI_DEV_FB_FREE","labels":{"gpu":"0","modelName":"NVIDIA L40S"},"value":1024},
    {"name":"DCGM_FI_DEV_FB_FREE","labels":{"gpu":"1","modelName":"NVIDIA L40S"},"value":1024},
    {"name":"DCGM_FI_DEV_GPU_UTIL","labels":{"gpu":"1"},"value":3},
    {"name":"DCGM_FI_DEV_POWER_USAGE","labels":{"gpu":"0"},"value":100.5},
    {"name":"DCGM_FI_DEV_POWER_MGMT_LIMIT","labels":{"gpu":"0"},"value":300}]})";
  auto c = parse_capacity(line).value();
  EXPECT_EQ(c.accelerators, 2u);
  EXPECT_EQ(c.busy, 1u);
  EXPECT_EQ(c.model, "NVIDIA L40S");
  EXPECT_DOUBLE_EQ(c.memory_free_bytes, 2048.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(c.power_headroom_watts, 199.5);
}

// What the agent's nvml and amdgpu drivers write (drivers/src/accelerators.cpp): one summary per
// vendor, no unhealthy count (total - busy - idle), the model on dcgm-exporter's series.
TEST(Capacity, AddsUpTheDriversSummariesPerVendor) {
  const std::string line = R"({"type":"report","node":"g6","seq":1,"time_ns":1,"labels":{},"metrics":[
    {"name":"DCGM_FI_DEV_FB_FREE","labels":{"gpu":"0","modelName":"NVIDIA H200"},"value":1024},
    {"name":"gridnode_accelerators","labels":{"vendor":"nvidia"},"value":4},
    {"name":"gridnode_accelerators_busy","labels":{"vendor":"nvidia"},"value":1},
    {"name":"gridnode_accelerators_idle","labels":{"vendor":"nvidia"},"value":2},
    {"name":"gridnode_accelerator_memory_free_bytes","labels":{"vendor":"nvidia"},"value":3000},
    {"name":"gridnode_accelerator_power_headroom_watts","labels":{"vendor":"nvidia"},"value":300.5},
    {"name":"gridnode_accelerators","labels":{"vendor":"amd"},"value":1},
    {"name":"gridnode_accelerators_busy","labels":{"vendor":"amd"},"value":0},
    {"name":"gridnode_accelerators_idle","labels":{"vendor":"amd"},"value":1},
    {"name":"gridnode_accelerator_memory_free_bytes","labels":{"vendor":"amd"},"value":1000},
    {"name":"gridnode_accelerator_power_headroom_watts","labels":{"vendor":"amd"},"value":0}]})";
  auto c = parse_capacity(line).value();
  EXPECT_EQ(c.accelerators, 5u);
  EXPECT_EQ(c.busy, 1u);
  EXPECT_EQ(c.unhealthy, 1u);  // one nvidia GPU neither busy nor idle: lost or hung
  EXPECT_EQ(c.idle(), 3u);
  EXPECT_EQ(c.health(), "degraded");
  EXPECT_EQ(c.model, "NVIDIA H200");
  EXPECT_DOUBLE_EQ(c.memory_free_bytes, 4000);
  EXPECT_DOUBLE_EQ(c.power_headroom_watts, 300.5);
}

std::string vendor_line(const std::string& node, const std::string& vendor, int total, int busy,
                        int idle, double free_bytes) {
  auto m = [&](const char* name, double v) {
    return nlohmann::json{{"name", name}, {"labels", {{"vendor", vendor}}}, {"value", v}};
  };
  nlohmann::json metrics = nlohmann::json::array(
      {m("gridnode_accelerators", total), m("gridnode_accelerators_busy", busy),
       m("gridnode_accelerators_idle", idle),
       m("gridnode_accelerator_memory_free_bytes", free_bytes),
       m("gridnode_accelerator_power_headroom_watts", 0)});
  return nlohmann::json{{"type", "report"}, {"node", node},   {"seq", 1},
                        {"time_ns", kNow - kS}, {"labels", {{"region", "r"}, {"site", "s"}}},
                        {"metrics", metrics}}
      .dump();
}

TEST(Capacity, VendorQueryCountsOnlyThatVendorsShare) {
  CapacityTable t(3, std::chrono::seconds(10));
  t.apply(*parse_capacity(vendor_line("npu-a", "huawei", 8, 2, 6, 8e9)));
  t.apply(*parse_capacity(vendor_line("gpu-b", "nvidia", 8, 0, 8, 6e11)));
  // A mixed node: 4 NVIDIA GPUs (1 lost: neither busy nor idle) and 2 Ascend NPUs.
  std::string mixed = vendor_line("mix-c", "nvidia", 4, 1, 2, 1e9);
  auto line = nlohmann::json::parse(mixed);
  const auto npus = nlohmann::json::parse(vendor_line("mix-c", "huawei", 2, 0, 2, 2e9));
  for (const auto& e : npus["metrics"]) {
    line["metrics"].push_back(e);
  }
  auto c = parse_capacity(line.dump()).value();
  EXPECT_EQ(c.accelerators, 6u);
  ASSERT_EQ(c.vendors.count("huawei"), 1u);
  EXPECT_EQ(c.vendors["huawei"].accelerators, 2u);
  EXPECT_EQ(c.vendors["nvidia"].unhealthy, 1u);
  EXPECT_EQ(c.vendors["huawei"].unhealthy, 0u);
  t.apply(c);
  CapacityQuery q;
  q.min_free_gpus = 0;
  auto all = nlohmann::json::parse(t.answer(q, kNow));
  EXPECT_EQ(all["total"]["nodes"], 3);
  EXPECT_EQ(all["total"]["accelerators"], 22);
  q.vendor = "huawei";
  auto huawei = nlohmann::json::parse(t.answer(q, kNow));
  EXPECT_EQ(huawei["total"]["nodes"], 2);
  EXPECT_EQ(huawei["total"]["accelerators"], 10);
  EXPECT_EQ(huawei["total"]["free_accelerators"], 8);
  EXPECT_DOUBLE_EQ(huawei["total"]["memory_free_mib"].get<double>(), (8e9 + 2e9) / 1048576.0);
  ASSERT_EQ(huawei["nodes"].size(), 2u);
  EXPECT_EQ(huawei["nodes"][0]["node"], "npu-a");  // 6 idle before 2
  q.vendor = "nvidia";
  EXPECT_EQ(nlohmann::json::parse(t.answer(q, kNow))["total"]["accelerators"], 12);
  q.vendor = "cambricon";
  EXPECT_EQ(nlohmann::json::parse(t.answer(q, kNow))["total"]["nodes"], 0);
}

TEST(Capacity, IgnoresWhatIsNotAReport) {
  EXPECT_FALSE(parse_capacity(R"({"type":"gap","node":"g1"})"));
  EXPECT_FALSE(parse_capacity(R"({"type":"catalog","node":"g1","raw":""})"));
  EXPECT_FALSE(parse_capacity("not json"));
  EXPECT_FALSE(parse_capacity(R"({"type":"report","node":1,"metrics":[]})"));
  // Odd metric entries are skipped, not fatal.
  auto c = parse_capacity(R"({"type":"report","node":"x","metrics":[1,{"name":"gridnode_accelerators"},{"name":"gridnode_accelerators","value":"8"}]})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accelerators, 0u);
}

TEST(Capacity, BestFirstFiltersAndTotals) {
  CapacityTable t(3, std::chrono::seconds(10));
  t.apply(*parse_capacity(summary_line("a", "east", 1, kNow - kS, 8, 6, 0, 50)));   // 2 idle
  t.apply(*parse_capacity(summary_line("b", "east", 1, kNow - kS, 8, 0, 0, 600)));  // 8 idle
  t.apply(*parse_capacity(summary_line("c", "west", 1, kNow - kS, 8, 6, 0, 90)));   // 2 idle, more mem
  t.apply(*parse_capacity(summary_line("d", "west", 1, kNow - 60 * kS, 8, 0, 0, 600)));  // stale
  t.apply(*parse_capacity(summary_line("e", "west", 1, kNow - kS, 4, 0, 4, 320)));  // failed
  auto all = nlohmann::json::parse(t.answer({}, kNow));
  std::vector<std::string> order;
  for (const auto& n : all["nodes"]) {
    order.push_back(n["node"]);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(all["matching"], 3);
  EXPECT_EQ(all["total"]["nodes"], 5);
  EXPECT_EQ(all["total"]["stale_nodes"], 1);
  EXPECT_EQ(all["total"]["free_accelerators"], 12);
  for (const auto& r : all["regions"]) {
    EXPECT_EQ(r["free_accelerators"], r["region"] == "east" ? 10 : 2) << r.dump();
  }
  CapacityQuery q;
  q.min_free_gpus = 3;
  EXPECT_EQ(nlohmann::json::parse(t.answer(q, kNow))["nodes"].size(), 1u);
  q = {};
  q.min_free_mem_mib = 80 * 1024;
  EXPECT_EQ(nlohmann::json::parse(t.answer(q, kNow))["nodes"][0]["node"], "b");
  EXPECT_EQ(nlohmann::json::parse(t.answer(q, kNow))["nodes"].size(), 2u);
  q = {};
  q.region = "west";
  q.limit = 0;
  auto west = nlohmann::json::parse(t.answer(q, kNow));
  EXPECT_EQ(west["nodes"].size(), 0u);
  EXPECT_EQ(west["matching"], 1);
  EXPECT_EQ(west["total"]["nodes"], 3);
  auto d = nlohmann::json::parse(t.node("d", kNow).value());
  EXPECT_EQ(d["stale"], true);
  EXPECT_EQ(d["free_accelerators"], 0);
  EXPECT_FALSE(t.node("zz", kNow));
}

TEST(Capacity, StaleAfterThreeOfTheNodesOwnIntervals) {
  CapacityTable t(3, std::chrono::seconds(10));
  t.apply(*parse_capacity(summary_line("a", "east", 1, kNow - 12 * kS, 8, 0, 0, 1)));
  t.apply(*parse_capacity(summary_line("a", "east", 2, kNow - 10 * kS, 8, 0, 0, 1)));  // every 2 s
  auto a = nlohmann::json::parse(t.node("a", kNow).value());
  EXPECT_EQ(a["stale"], true);  // 10 s > 3 × 2 s
  EXPECT_FALSE(t.stale(*parse_capacity(summary_line("b", "east", 1, kNow - 10 * kS, 1, 0, 0, 1)), kNow))
      << "10 s is within 3 × the default 10 s";
  // An older report does not replace a newer one.
  t.apply(*parse_capacity(summary_line("a", "east", 1, kNow - 12 * kS, 8, 8, 0, 1)));
  EXPECT_EQ(nlohmann::json::parse(t.node("a", kNow).value())["busy"], 0);
  EXPECT_NE(t.metrics(kNow).find("gridnode_capacity_nodes_stale 1\n"), std::string::npos);
}

}  // namespace
}  // namespace gridnode::collector
