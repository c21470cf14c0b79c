#include <unistd.h>

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accelerators.hpp"
#include "amdgpu/amdgpu_parse.hpp"
#include "gridnode/drivers/amdgpu.hpp"
#include "gridnode/platform/files.hpp"
#include "reading_plan.hpp"

namespace gridnode::drivers {
namespace {

constexpr std::string_view kComponent = "amdgpu";

// AMD device-metrics-exporter's field names, lower-cased as it exports them.
enum Metric : std::uint8_t {
  kActivity,
  kVramTotal,
  kVramUsed,
  kVramFree,
  kPower,
  kEdgeTemp,
  kJunctionTemp,
  kMemoryTemp,
  kSystemClock,
  kMemoryClock,
  kMetricCount
};

Family family_of(Metric m) {
  using T = MetricType;
  switch (m) {
    case kActivity:
      return {"gpu_gfx_activity", "Graphics engine usage percentage (0 - 100)", T::gauge, {}, "%"};
    case kVramTotal:
      return {"gpu_total_vram", "Total VRAM available in MB", T::gauge, {}, "MiB"};
    case kVramUsed:
      return {"gpu_used_vram", "Total VRAM memory used in MB", T::gauge, {}, "MiB"};
    case kVramFree:
      return {"gpu_free_vram", "Total VRAM memory free in MB", T::gauge, {}, "MiB"};
    case kPower:
      return {"gpu_power_usage", "GPU power usage in Watts", T::gauge, {1, -6}, "W"};
    case kEdgeTemp:
      return {"gpu_edge_temperature", "Edge temperature value in Celsius", T::gauge, {1, -3}, "°C"};
    case kJunctionTemp:
      return {"gpu_junction_temperature",
              "Hotspot (aka junction) temperature value in Celsius",
              T::gauge,
              {1, -3},
              "°C"};
    case kMemoryTemp:
      return {
          "gpu_memory_temperature", "Memory temperature value in Celsius", T::gauge, {1, -3}, "°C"};
    case kSystemClock:
    case kMemoryClock:
      return {"gpu_clock", "Clock measure of the GPU in Mhz", T::gauge, {}, "MHz"};
    case kMetricCount:
      break;
  }
  return {};
}

struct Card {
  std::uint32_t index = 0;
  std::string dir;  // <sysfs>/class/drm/cardN/device
  // The file each metric comes from; empty when the card has none (free VRAM is computed).
  std::array<std::string, kMetricCount> path;
  std::uint32_t first_series = 0;
};

// A reading's place: which card (index into the driver's cards_) and metric. The plan holds a
// card's readings together, in metric order.
struct Slot {
  std::uint32_t card = 0;
  Metric metric = kMetricCount;
};
// pp_dpm_sclk lists every level, one line each.
using Plan = ReadingPlan<Slot, 1024>;

platform::Result<std::uint64_t> parse_metric(Plan::Entry& e, std::string_view text) {
  if (e.state.metric == kSystemClock || e.state.metric == kMemoryClock) {
    if (auto mhz = amdgpu::parse_dpm_current(text)) {
      return *mhz;
    }
    return platform::fail(std::errc::invalid_argument, "no current ('*') level");
  }
  // Temperatures are signed in hwmon's ABI; a GPU below 0 °C is not one we will meet, and
  // a negative value here is as wrong as text.
  return platform::parse_uint64(text);
}

class AmdgpuDriver final : public Driver {
 public:
  // amdgpu's attributes are opened and closed at each read, as before the plan: a host has
  // few cards and the files are cheap to open.
  explicit AmdgpuDriver(AmdgpuOptions options)
      : options_(std::move(options)),
        dir_(options_.roots.sys("class/drm")),
        plan_(kComponent, /*keep_open=*/false, "amdgpu readings need root or CAP_DAC_READ_SEARCH") {
    if (options_.hostname.empty()) {
      options_.hostname = accelerators::host_name();
    }
  }

  std::string_view name() const override { return kComponent; }

  platform::Result<void> sweep(Sweep& out) override {
    auto discover = [this](Walk<Slot>& walk) { return this->discover(walk); };
    auto walked = plan_.walk_if_due(out, discover);
    if (!walked) {
      cards_.clear();
      return walked;
    }
    if (cards_.empty()) {
      return platform::fail(std::errc::no_such_file_or_directory, dir_ + ": no amdgpu card");
    }
    accelerators::Summary summary;
    summary.total = static_cast<std::int64_t>(cards_.size());
    auto& entries = plan_.entries();
    std::size_t next = 0;
    for (std::uint32_t c = 0; c < cards_.size(); ++c) {
      const Card& card = cards_[c];
      std::array<std::optional<std::uint64_t>, kMetricCount> v{};
      for (; next < entries.size() && entries[next].state.card == c; ++next) {
        v[entries[next].state.metric] = plan_.read(entries[next], out, parse_metric);
      }
      std::optional<std::uint64_t> free;
      if (v[kVramTotal] && v[kVramUsed] && *v[kVramTotal] >= *v[kVramUsed]) {
        free = *v[kVramTotal] - *v[kVramUsed];
        summary.free_memory_bytes += *free;
      }
      for (Metric m : {kVramTotal, kVramUsed}) {
        if (v[m]) {
          *v[m] >>= 20;
        }
      }
      if (free) {
        v[kVramFree] = *free >> 20;
      }
      for (int m = 0; m < kMetricCount; ++m) {
        if (v[m]) {
          out.readings.push_back({card.first_series + m, Value::of_unsigned(*v[m])});
        }
      }
      if (v[kActivity]) {
        (*v[kActivity] > 0 ? summary.busy : summary.idle) += 1;
      }
    }
    accelerators::push_summary(out, summary_, summary);
    return {};
  }

 private:
  bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

  // The first line of a small label file, trimmed; empty if absent.
  std::string label(const std::string& path) {
    auto text = platform::read_small_file(path, plan_.buffer());
    return text ? std::string(platform::trim(*text)) : std::string();
  }

  platform::Result<void> discover(Walk<Slot>& walk) {
    auto names = platform::list_dir(dir_);
    if (!names) {
      return tl::unexpected(names.error());
    }
    std::vector<Card> cards;
    for (const auto& entry : *names) {
      auto index = amdgpu::parse_card_index(entry);
      if (!index) {
        continue;
      }
      Card card;
      card.index = *index;
      card.dir = dir_ + "/" + entry + "/device";
      // device/driver links to .../drivers/amdgpu for the cards amdgpu drives.
      auto driver = platform::read_link(card.dir + "/driver");
      if (!driver || !(driver->ends_with("/amdgpu") || *driver == "amdgpu")) {
        continue;
      }
      auto add = [&](Metric m, const std::string& path) {
        if (exists(path)) {
          card.path[m] = path;
        }
      };
      add(kActivity, card.dir + "/gpu_busy_percent");
      add(kVramTotal, card.dir + "/mem_info_vram_total");
      add(kVramUsed, card.dir + "/mem_info_vram_used");
      add(kSystemClock, card.dir + "/pp_dpm_sclk");
      add(kMemoryClock, card.dir + "/pp_dpm_mclk");
      // The card's hwmon directory: its temperatures are labelled edge, junction and mem.
      auto hwmons = platform::list_dir(card.dir + "/hwmon");
      if (hwmons && !hwmons->empty()) {
        std::string h = card.dir + "/hwmon/" + hwmons->front();
        if (exists(h + "/power1_average")) {
          card.path[kPower] = h + "/power1_average";
        } else {
          add(kPower, h + "/power1_input");
        }
        for (int t = 1; t <= 3; ++t) {
          std::string base = h + "/temp" + std::to_string(t);
          std::string which = label(base + "_label");
          Metric m = which == "edge"       ? kEdgeTemp
                     : which == "junction" ? kJunctionTemp
                     : which == "mem"      ? kMemoryTemp
                                           : kMetricCount;
          if (m != kMetricCount) {
            add(m, base + "_input");
          }
        }
      }
      cards.push_back(std::move(card));
    }
    Catalog& c = walk.catalog;
    for (std::uint32_t i = 0; i < cards.size(); ++i) {
      Card& card = cards[i];
      std::string model = label(card.dir + "/product_name");
      if (model.empty()) {
        model = label(card.dir + "/device");  // the PCI device id, "0x740c"
      }
      Labels labels{{"gpu_id", std::to_string(card.index)},
                    {"card_model", model},
                    {"serial_number", label(card.dir + "/serial_number")},
                    {"hostname", options_.hostname}};
      card.first_series = static_cast<std::uint32_t>(c.series.size());
      for (int m = 0; m < kMetricCount; ++m) {
        Labels l = labels;
        if (m == kSystemClock || m == kMemoryClock) {
          l.emplace_back("clock_type",
                         m == kSystemClock ? "GPU_CLOCK_TYPE_SYSTEM" : "GPU_CLOCK_TYPE_MEMORY");
        }
        c.add_series(c.add_family(family_of(static_cast<Metric>(m))), std::move(l));
        if (!card.path[m].empty()) {
          walk.read(card.path[m], card.first_series + m, Slot{i, static_cast<Metric>(m)});
        }
      }
    }
    summary_ = accelerators::add_summary(c, "amd");
    cards_ = std::move(cards);
    return {};
  }

  AmdgpuOptions options_;
  std::string dir_;
  std::vector<Card> cards_;
  std::uint32_t summary_ = 0;
  Plan plan_;
};

}  // namespace

std::unique_ptr<Driver> make_amdgpu_driver(AmdgpuOptions options) {
  return std::make_unique<AmdgpuDriver>(std::move(options));
}

}  // namespace gridnode::drivers
