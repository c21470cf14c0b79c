#include <algorithm>
#include <array>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "accelerator/c_string.hpp"
#include "accelerator/device_set.hpp"
#include "accelerator/process_owner.hpp"
#include "accelerator/vendor_driver.hpp"
#include "accelerators.hpp"
#include "gridnode/drivers/nvml.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "nvml/nvml_library.hpp"
#include "nvml/nvml_power.hpp"

namespace gridnode::drivers {
namespace {

using namespace nvml;  // NOLINT: the NVML ABI's names read best unqualified here
using Clock = std::chrono::steady_clock;

constexpr std::string_view kComponent = "nvml";

// The per-GPU values, in catalog order. Each is read by one NVML call (or one part of one).
enum Metric : std::uint8_t {
  kGpuTemp,
  kMemoryTemp,
  kPowerUsage,
  kTotalEnergy,
  kPowerLimit,
  kSmClock,
  kMemClock,
  kGpuUtil,
  kMemCopyUtil,
  kEncUtil,
  kDecUtil,
  kFbTotal,
  kFbFree,
  kFbUsed,
  kFbReserved,
  kPcieReplay,
  kEccSbeVol,
  kEccDbeVol,
  kEccSbeAgg,
  kEccDbeAgg,
  kRetiredSbe,
  kRetiredDbe,
  kRetiredPending,
  kRemapCorrectable,
  kRemapUncorrectable,
  kRemapFailure,
  kClockReasons,
  kFanSpeed,
  kPstate,
  kMigMode,
  kMetricCount
};

// dcgm-exporter's names and HELP texts (etc/default-counters.csv, dcp-metrics-included.csv),
// and the units DCGM converts NVML's values to: power in W (NVML gives mW, kept exact with
// scale 10^-3), energy in mJ, framebuffer in MiB (NVML gives bytes; DCGM divides by 2^20).
Family metric_family(Metric m) {
  using T = MetricType;
  switch (m) {
    case kGpuTemp:
      return {"DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", T::gauge, {}, "°C"};
    case kMemoryTemp:
      return {"DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", T::gauge, {}, "°C"};
    case kPowerUsage:
      return {"DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", T::gauge, {1, -3}, "W"};
    case kTotalEnergy:
      return {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
              "Total energy consumption since boot (in mJ).",
              T::counter,
              {},
              "mJ"};
    case kPowerLimit:
      return {
          "DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", T::gauge, {1, -3}, "W"};
    case kSmClock:
      return {"DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", T::gauge, {}, "MHz"};
    case kMemClock:
      return {"DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", T::gauge, {}, "MHz"};
    case kGpuUtil:
      return {"DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", T::gauge, {}, "%"};
    case kMemCopyUtil:
      return {"DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", T::gauge, {}, "%"};
    case kEncUtil:
      return {"DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).", T::gauge, {}, "%"};
    case kDecUtil:
      return {"DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).", T::gauge, {}, "%"};
    case kFbTotal:
      return {"DCGM_FI_DEV_FB_TOTAL", "Framebuffer memory total (in MiB).", T::gauge, {}, "MiB"};
    case kFbFree:
      return {"DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", T::gauge, {}, "MiB"};
    case kFbUsed:
      return {"DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", T::gauge, {}, "MiB"};
    case kFbReserved:
      return {
          "DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", T::gauge, {}, "MiB"};
    case kPcieReplay:
      return {
          "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", T::counter, {}, ""};
    case kEccSbeVol:
      return {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
              "Total number of single-bit volatile ECC errors.",
              T::counter,
              {},
              ""};
    case kEccDbeVol:
      return {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
              "Total number of double-bit volatile ECC errors.",
              T::counter,
              {},
              ""};
    case kEccSbeAgg:
      return {"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
              "Total number of single-bit persistent ECC errors.",
              T::counter,
              {},
              ""};
    case kEccDbeAgg:
      return {"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
              "Total number of double-bit persistent ECC errors.",
              T::counter,
              {},
              ""};
    case kRetiredSbe:
      return {"DCGM_FI_DEV_RETIRED_SBE",
              "Total number of retired pages due to single-bit errors.",
              T::counter,
              {},
              ""};
    case kRetiredDbe:
      return {"DCGM_FI_DEV_RETIRED_DBE",
              "Total number of retired pages due to double-bit errors.",
              T::counter,
              {},
              ""};
    case kRetiredPending:
      return {"DCGM_FI_DEV_RETIRED_PENDING",
              "Total number of pages pending retirement.",
              T::counter,
              {},
              ""};
    case kRemapCorrectable:
      return {"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
              "Number of remapped rows for correctable errors",
              T::counter,
              {},
              ""};
    case kRemapUncorrectable:
      return {"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
              "Number of remapped rows for uncorrectable errors",
              T::counter,
              {},
              ""};
    case kRemapFailure:
      return {"DCGM_FI_DEV_ROW_REMAP_FAILURE",
              "Whether remapping of rows has failed",
              T::gauge,
              {},
              ""};
    case kClockReasons:
      return {"DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
              "Current clock event reasons (bitmask of DCGM_CLOCKS_EVENT_REASON_*)",
              T::gauge,
              {},
              ""};
    case kFanSpeed:
      return {
          "DCGM_FI_DEV_FAN_SPEED", "Fan speed for the device in percent 0-100.", T::gauge, {}, "%"};
    case kPstate:
      return {
          "DCGM_FI_DEV_PSTATE", "Performance state (P-State) 0-15. 0=highest", T::gauge, {}, ""};
    case kMigMode:
      return {"DCGM_FI_DEV_MIG_MODE", "MIG mode for the device (1 enabled).", T::gauge, {}, ""};
    case kMetricCount:
      break;
  }
  return {};
}

Family xid_family() {
  return {"DCGM_FI_DEV_XID_ERRORS",
          "Value of the last XID error encountered.",
          MetricType::gauge,
          {},
          ""};
}
Family up_family() {
  return {"gridnode_gpu_up",
          "Whether the GPU answers NVML (0: fell off the bus, or a call to it hung).",
          MetricType::gauge,
          {},
          ""};
}
Family degraded_family() {
  return {"gridnode_gpu_degraded",
          "Whether an NVML call to the GPU is still running past its deadline.",
          MetricType::gauge,
          {},
          ""};
}
// What one GPU's worker read in one sweep. Written by the worker only, read by the sweep only
// after the worker is done with it.
struct GpuRead {
  bool lost = false;
  std::uint64_t errors = 0;
  std::string first_error;
  std::array<std::optional<std::int64_t>, kMetricCount> values{};
  std::uint64_t fb_free_bytes = 0;
  bool processes_ok = false;
  std::vector<nvmlProcessInfo_t> processes;
};

// Records an NVML answer for a field: true on success. GPU_IS_LOST ends the GPU's read;
// NOT_SUPPORTED and FUNCTION_NOT_FOUND mean the hardware or driver lacks the field (absent,
// not an error, as collectd's gpu_nvidia TRYOPT); anything else skips the field and counts.
bool answered(GpuRead& r, nvmlReturn_t rc, const char* call) {
  if (rc == NVML_SUCCESS) {
    return true;
  }
  if (rc == NVML_ERROR_GPU_IS_LOST) {
    r.lost = true;
  } else if (rc != NVML_ERROR_NOT_SUPPORTED && rc != NVML_ERROR_FUNCTION_NOT_FOUND) {
    if (r.errors++ == 0) {
      r.first_error = nvml_error(rc, call).message();
    }
  }
  return false;
}

// Reads every field of one GPU. Runs on the GPU's worker thread; may block inside NVML.
void read_gpu(const Api& a, nvmlDevice_t dev, GpuRead& r) {
  auto set = [&](Metric m, std::int64_t v) { r.values[m] = v; };
  unsigned int u = 0, u2 = 0, u3 = 0, u4 = 0;
  unsigned long long ull = 0;

  if (a.get_temperature &&
      answered(r, a.get_temperature(dev, NVML_TEMPERATURE_GPU, &u), "nvmlDeviceGetTemperature")) {
    set(kGpuTemp, u);
  }
  if (r.lost) return;
  if (a.get_field_values) {
    nvmlFieldValue_t fv{};
    fv.fieldId = NVML_FI_DEV_MEMORY_TEMP;
    if (answered(r, a.get_field_values(dev, 1, &fv), "nvmlDeviceGetFieldValues") &&
        answered(r, fv.nvmlReturn, "nvmlDeviceGetFieldValues(MEMORY_TEMP)")) {
      switch (fv.valueType) {
        case NVML_VALUE_TYPE_UNSIGNED_INT:
          set(kMemoryTemp, fv.value.uiVal);
          break;
        case NVML_VALUE_TYPE_SIGNED_INT:
          set(kMemoryTemp, fv.value.siVal);
          break;
        case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
          set(kMemoryTemp, static_cast<std::int64_t>(fv.value.ullVal));
          break;
        case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
          set(kMemoryTemp, fv.value.sllVal);
          break;
        default:
          break;  // a type memory temperatures do not come in
      }
    }
  }
  if (r.lost) return;
  if (a.get_power_usage && answered(r, a.get_power_usage(dev, &u), "nvmlDeviceGetPowerUsage")) {
    set(kPowerUsage, u);
  }
  if (r.lost) return;
  if (a.get_total_energy &&
      answered(r, a.get_total_energy(dev, &ull), "nvmlDeviceGetTotalEnergyConsumption")) {
    set(kTotalEnergy, static_cast<std::int64_t>(ull));
  }
  if (r.lost) return;
  if (a.get_power_limit &&
      answered(r, a.get_power_limit(dev, &u), "nvmlDeviceGetEnforcedPowerLimit")) {
    set(kPowerLimit, u);
  }
  if (r.lost) return;
  if (a.get_clock) {
    if (answered(r, a.get_clock(dev, NVML_CLOCK_SM, &u), "nvmlDeviceGetClockInfo(SM)")) {
      set(kSmClock, u);
    }
    if (r.lost) return;
    if (answered(r, a.get_clock(dev, NVML_CLOCK_MEM, &u), "nvmlDeviceGetClockInfo(MEM)")) {
      set(kMemClock, u);
    }
  }
  if (r.lost) return;
  if (a.get_utilization) {
    nvmlUtilization_t util{};
    if (answered(r, a.get_utilization(dev, &util), "nvmlDeviceGetUtilizationRates")) {
      set(kGpuUtil, util.gpu);
      set(kMemCopyUtil, util.memory);
    }
  }
  if (r.lost) return;
  if (a.get_encoder &&
      answered(r, a.get_encoder(dev, &u, &u2), "nvmlDeviceGetEncoderUtilization")) {
    set(kEncUtil, u);
  }
  if (r.lost) return;
  if (a.get_decoder &&
      answered(r, a.get_decoder(dev, &u, &u2), "nvmlDeviceGetDecoderUtilization")) {
    set(kDecUtil, u);
  }
  if (r.lost) return;
  constexpr int kMiB = 20;
  bool memory_v2 = false;
  if (a.get_memory_v2) {
    nvmlMemory_v2_t mem{};
    mem.version = nvmlMemory_v2;
    nvmlReturn_t rc = a.get_memory_v2(dev, &mem);
    if (rc == NVML_SUCCESS) {
      memory_v2 = true;
      set(kFbTotal, static_cast<std::int64_t>(mem.total >> kMiB));
      set(kFbFree, static_cast<std::int64_t>(mem.free >> kMiB));
      set(kFbUsed, static_cast<std::int64_t>(mem.used >> kMiB));
      set(kFbReserved, static_cast<std::int64_t>(mem.reserved >> kMiB));
      r.fb_free_bytes = mem.free;
    } else if (rc == NVML_ERROR_GPU_IS_LOST) {
      r.lost = true;
      return;
    }
    // Anything else (a driver that exports _v2 but not this struct version: ARGUMENT_VERSION_
    // MISMATCH, or NOT_SUPPORTED on a vGPU) falls back to the v1 call, without `reserved`.
  }
  if (!memory_v2 && a.get_memory) {
    nvmlMemory_t mem{};
    if (answered(r, a.get_memory(dev, &mem), "nvmlDeviceGetMemoryInfo")) {
      set(kFbTotal, static_cast<std::int64_t>(mem.total >> kMiB));
      set(kFbFree, static_cast<std::int64_t>(mem.free >> kMiB));
      set(kFbUsed, static_cast<std::int64_t>(mem.used >> kMiB));
      r.fb_free_bytes = mem.free;
    }
  }
  if (r.lost) return;
  if (a.get_pcie_replay &&
      answered(r, a.get_pcie_replay(dev, &u), "nvmlDeviceGetPcieReplayCounter")) {
    set(kPcieReplay, u);
  }
  if (r.lost) return;
  if (a.get_ecc) {
    constexpr std::array<std::tuple<Metric, int, int>, 4> kEcc{{
        {kEccSbeVol, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC},
        {kEccDbeVol, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC},
        {kEccSbeAgg, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC},
        {kEccDbeAgg, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC},
    }};
    for (auto [m, type, counter] : kEcc) {
      if (answered(r, a.get_ecc(dev, type, counter, &ull), "nvmlDeviceGetTotalEccErrors")) {
        set(m, static_cast<std::int64_t>(ull));
      }
      if (r.lost) return;
      // ECC off: every counter says so; asking the others would only repeat it.
      if (!r.values[m]) break;
    }
  }
  if (r.lost) return;
  if (a.get_retired) {
    for (auto [m, cause] :
         {std::pair{kRetiredSbe, NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS},
          std::pair{kRetiredDbe, NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR}}) {
      // A count of 0 with no buffer asks for the number only; NVML answers SUCCESS or
      // INSUFFICIENT_SIZE with the count filled in.
      unsigned int count = 0;
      nvmlReturn_t rc = a.get_retired(dev, cause, &count, nullptr);
      if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
        rc = NVML_SUCCESS;
      }
      if (answered(r, rc, "nvmlDeviceGetRetiredPages")) {
        set(m, count);
      }
      if (r.lost || !r.values[m]) break;
    }
  }
  if (r.lost) return;
  if (a.get_retired_pending) {
    int pending = 0;
    if (answered(r, a.get_retired_pending(dev, &pending),
                 "nvmlDeviceGetRetiredPagesPendingStatus")) {
      set(kRetiredPending, pending == NVML_FEATURE_ENABLED ? 1 : 0);
    }
  }
  if (r.lost) return;
  if (a.get_remapped_rows &&
      answered(r, a.get_remapped_rows(dev, &u, &u2, &u3, &u4), "nvmlDeviceGetRemappedRows")) {
    set(kRemapCorrectable, u);
    set(kRemapUncorrectable, u2);
    set(kRemapFailure, u4 != 0 ? 1 : 0);
  }
  if (r.lost) return;
  if (a.get_clock_reasons &&
      answered(r, a.get_clock_reasons(dev, &ull), "nvmlDeviceGetCurrentClocksEventReasons")) {
    set(kClockReasons, static_cast<std::int64_t>(ull));
  }
  if (r.lost) return;
  if (a.get_fan && answered(r, a.get_fan(dev, &u), "nvmlDeviceGetFanSpeed")) {
    set(kFanSpeed, u);
  }
  if (r.lost) return;
  int pstate = 0;
  // 32 is NVML_PSTATE_UNKNOWN: no value rather than a made-up one.
  if (a.get_pstate && answered(r, a.get_pstate(dev, &pstate), "nvmlDeviceGetPerformanceState") &&
      pstate >= 0 && pstate <= 15) {
    set(kPstate, pstate);
  }
  if (r.lost) return;
  if (a.get_mig_mode && answered(r, a.get_mig_mode(dev, &u, &u2), "nvmlDeviceGetMigMode")) {
    set(kMigMode, u);
  }
  if (r.lost) return;
  if (a.get_processes) {
    // The list can grow between the sizing call and the reading call: retry a few times.
    unsigned int count = static_cast<unsigned int>(r.processes.capacity());
    for (int attempt = 0; attempt < 3; ++attempt) {
      r.processes.resize(std::max(count, 1U));
      count = static_cast<unsigned int>(r.processes.size());
      nvmlReturn_t rc = a.get_processes(dev, &count, r.processes.data());
      if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
        count += 8;
        continue;
      }
      if (answered(r, rc, "nvmlDeviceGetComputeRunningProcesses")) {
        r.processes.resize(std::min<std::size_t>(count, r.processes.size()));
        r.processes_ok = true;
      }
      break;
    }
    if (!r.processes_ok) {
      r.processes.clear();
    }
  }
}

// What one GPU is, learnt at discovery.
struct Gpu {
  unsigned index = 0;
  nvmlDevice_t handle = nullptr;
  std::string uuid, name, bus_id, device;
  Labels labels;  // gpu, UUID, pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION
  std::uint32_t first_series = 0;  // kMetricCount metrics, then xid, up, degraded
  bool xid_registered = false;
  std::optional<std::uint64_t> last_xid;
  // Health, kept across sweeps, and the worker its calls run on.
  accelerators::DeviceSlot slot;
  std::shared_ptr<GpuRead> read;  // owned by the worker while it is busy; fresh: this sweep's
  std::uint64_t errors_logged = 0;
  platform::Complaint complaint;
};

// What the control worker finds at discovery (everything but per-GPU values).
struct Discovery {
  nvmlReturn_t init = NVML_SUCCESS;
  nvmlReturn_t count_rc = NVML_SUCCESS;
  unsigned count = 0;
  std::string driver_version;
  struct Found {
    nvmlReturn_t rc = NVML_SUCCESS;
    nvmlDevice_t handle = nullptr;
    std::string uuid, name, bus_id;
    std::optional<unsigned> minor;
  };
  std::vector<Found> gpus;
  nvmlEventSet_t events = nullptr;
  std::vector<bool> xid_registered;
};

// What the control worker finds in a steady sweep: the GPU count (a change means rediscovery)
// and the events NVML queued since the last one.
struct Poll {
  nvmlReturn_t count_rc = NVML_SUCCESS;
  unsigned count = 0;
  std::vector<nvmlEventData_t> events;
};

void discover_on_worker(const Api& a, bool need_init, Discovery& d) {
  if (need_init) {
    d.init = a.init();
    if (d.init != NVML_SUCCESS) {
      return;
    }
  }
  d.count_rc = a.get_count(&d.count);
  if (d.count_rc != NVML_SUCCESS) {
    return;
  }
  if (a.driver_version) {
    std::array<char, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE> buf{};
    if (a.driver_version(buf.data(), buf.size()) == NVML_SUCCESS) {
      d.driver_version = accelerators::from_c_buffer(buf.data(), buf.size());
    }
  }
  if (a.event_set_create && a.register_events && a.event_set_wait && a.event_set_free &&
      a.event_set_create(&d.events) != NVML_SUCCESS) {
    d.events = nullptr;
  }
  d.gpus.resize(d.count);
  d.xid_registered.assign(d.count, false);
  for (unsigned i = 0; i < d.count; ++i) {
    auto& g = d.gpus[i];
    g.rc = a.get_handle(i, &g.handle);
    if (g.rc != NVML_SUCCESS) {
      continue;
    }
    std::array<char, NVML_DEVICE_UUID_V2_BUFFER_SIZE> buf{};
    if (a.get_uuid && a.get_uuid(g.handle, buf.data(), buf.size()) == NVML_SUCCESS) {
      g.uuid = accelerators::from_c_buffer(buf.data(), buf.size());
    }
    buf.fill(0);
    if (a.get_name && a.get_name(g.handle, buf.data(), buf.size()) == NVML_SUCCESS) {
      g.name = accelerators::from_c_buffer(buf.data(), buf.size());
    }
    nvmlPciInfo_t pci{};
    if (a.get_pci && a.get_pci(g.handle, &pci) == NVML_SUCCESS) {
      g.bus_id = accelerators::from_c_buffer(pci.busId, sizeof pci.busId);
    }
    unsigned minor = 0;
    if (a.get_minor && a.get_minor(g.handle, &minor) == NVML_SUCCESS) {
      g.minor = minor;
    }
    if (d.events != nullptr) {
      d.xid_registered[i] =
          a.register_events(g.handle, nvmlEventTypeXidCriticalError, d.events) == NVML_SUCCESS;
    }
  }
}

void poll_on_worker(const Api& a, nvmlEventSet_t set, Poll& p) {
  p.count_rc = a.get_count(&p.count);
  if (set == nullptr) {
    return;
  }
  // A zero timeout only drains what is queued. At most 64 per sweep: a storm waits its turn.
  for (int i = 0; i < 64; ++i) {
    nvmlEventData_t e{};
    if (a.event_set_wait(set, &e, 0) != NVML_SUCCESS) {
      break;  // NVML_ERROR_TIMEOUT: nothing more
    }
    p.events.push_back(e);
  }
}

class NvmlDriver final : public accelerators::VendorDriver<Library> {
 public:
  explicit NvmlDriver(NvmlOptions options)
      : VendorDriver("NVML", "GPU"), options_(std::move(options)) {
    if (options_.hostname.empty()) {
      options_.hostname = accelerators::host_name();
    }
  }

  ~NvmlDriver() override {
    // Power-limit calls go through this driver's handles: withdraw them, waiting for a call
    // in flight (at most its deadline), before NVML is shut down under them.
    std::unique_lock<std::mutex> power_call;
    if (options_.power) {
      nvml::PowerState& ps = options_.power->state();
      power_call = std::unique_lock(ps.call_mu);
      ps.publish(nullptr, {}, options_.call_timeout);
    }
    bool any_busy = (control_ && control_->worker().busy()) ||
                    (options_.power && options_.power->state().busy());
    for (const auto& g : gpus_) {
      any_busy = any_busy || g.slot.worker->busy();
    }
    if (lib_ && initialized_ && !any_busy) {
      // Released on the control worker, which detaches itself should this hang too.
      auto lib = lib_;
      nvmlEventSet_t set = event_set_;
      control_->worker().submit([lib, set] {
        if (set != nullptr) {
          lib->api().event_set_free(set);
        }
        lib->api().shutdown();
      });
      control_->worker().wait_until(Clock::now() + options_.call_timeout);
    }
  }

  std::string_view name() const override { return kComponent; }

 private:
  const std::string& library_path() const override { return options_.library; }
  bool no_device() const override { return gpus_.empty(); }
  void read_devices(Sweep& out) override { read_gpus(out); }

  // Runs `job` on the control worker and waits for it; timed_out when it does not come back.
  platform::Result<void> on_control(std::function<void()> job, std::string_view what) {
    return control_->call(std::move(job), what, options_.call_timeout);
  }

  platform::Result<void> discover(Sweep& out, bool need_init) override {
    auto d = std::make_shared<Discovery>();
    auto lib = lib_;
    auto ran = on_control([lib, d, need_init] { discover_on_worker(lib->api(), need_init, *d); },
                          need_init ? "nvmlInit_v2" : "nvmlDeviceGetCount_v2");
    if (!ran) {
      return ran;
    }
    if (d->init != NVML_SUCCESS) {
      return tl::unexpected(init_error(d->init));
    }
    initialized_ = true;
    if (d->count_rc != NVML_SUCCESS) {
      return tl::unexpected(nvml_error(d->count_rc, "nvmlDeviceGetCount_v2"));
    }
    if (event_set_ != nullptr && d->events != nullptr && d->events != event_set_) {
      // A rediscovery made a fresh set; the old one goes (on this thread: it is idle NVML).
      lib_->api().event_set_free(event_set_);
    }
    event_set_ = d->events;
    driver_version_ = d->driver_version;
    build_gpus(*d, out);
    // No GPU (the library and the kernel driver are there, the GPUs are not) is absent, as
    // hwmon without chips: sweep() says so.
    return {};
  }

  platform::Error init_error(nvmlReturn_t rc) const {
    std::string call = "nvmlInit_v2 (" + lib_->path() + ")";
    switch (rc) {
      case NVML_ERROR_DRIVER_NOT_LOADED:
        // The library is installed but the kernel module is not: a host without NVIDIA GPUs,
        // or one whose driver failed to load. Absent, not down.
        return {std::make_error_code(std::errc::no_such_file_or_directory),
                call + ": " + nvml_error(rc, "").code.message() +
                    " (the nvidia kernel module is not loaded)"};
      case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return nvml_error(rc, call +
                                  ": libnvidia-ml and the nvidia kernel module come from "
                                  "different driver releases (reboot, or reload the module)");
      case NVML_ERROR_NO_PERMISSION:
        return nvml_error(rc, call + ": this user may not open /dev/nvidia*");
      default:
        return nvml_error(rc, call);
    }
  }

  void build_gpus(const Discovery& d, Sweep& out) {
    std::vector<Gpu> gpus(d.gpus.size());
    for (unsigned i = 0; i < d.gpus.size(); ++i) {
      const auto& f = d.gpus[i];
      Gpu& g = gpus[i];
      g.index = i;
      g.handle = f.handle;
      g.uuid = f.uuid;
      g.name = f.name;
      g.bus_id = f.bus_id;
      g.device = "nvidia" + std::to_string(f.minor.value_or(i));
      g.xid_registered = d.xid_registered[i];
      g.read = std::make_shared<GpuRead>();
      g.labels = {{"gpu", std::to_string(i)},
                  {"UUID", g.uuid},
                  {"pci_bus_id", g.bus_id},
                  {"device", g.device},
                  {"modelName", g.name},
                  {"Hostname", options_.hostname},
                  {"DCGM_FI_DRIVER_VERSION", driver_version_}};
      if (f.rc != NVML_SUCCESS) {
        g.slot.lost = true;
        if (f.rc == NVML_ERROR_GPU_IS_LOST) {
          lost_event(g, out);
        } else {
          platform::log(
              platform::Level::warning, kComponent,
              platform::LogLine("GPU not usable")
                  .kv("gpu", i)
                  .kv("err", nvml_error(f.rc, "nvmlDeviceGetHandleByIndex_v2").message()));
        }
      }
    }
    // A GPU whose worker is still stuck keeps it (detached when the old entry goes).
    gpus_ = std::move(gpus);
    if (options_.power) {
      std::vector<PowerState::Gpu> found;
      for (const auto& g : gpus_) {
        found.push_back({g.slot.lost ? nullptr : g.handle, g.uuid});
      }
      options_.power->state().publish(lib_, std::move(found), options_.call_timeout);
    }
    base_catalog_ = build_base_catalog();
    processes_.reset();
    catalog_ = base_catalog_;
  }

  std::shared_ptr<const Catalog> build_base_catalog() {
    Catalog c;
    std::array<std::uint32_t, kMetricCount> fam{};
    for (int m = 0; m < kMetricCount; ++m) {
      fam[m] = c.add_family(metric_family(static_cast<Metric>(m)));
    }
    auto xid = c.add_family(xid_family());
    auto up = c.add_family(up_family());
    auto degraded = c.add_family(degraded_family());
    for (auto& g : gpus_) {
      g.first_series = static_cast<std::uint32_t>(c.series.size());
      for (int m = 0; m < kMetricCount; ++m) {
        c.add_series(fam[m], g.labels);
      }
      c.add_series(xid, g.labels);
      c.add_series(up, g.labels);
      c.add_series(degraded, g.labels);
    }
    summary_series_ = accelerators::add_summary(c, "nvidia");
    process_family_ = c.add_family(accelerators::process_family());
    return std::make_shared<const Catalog>(std::move(c));
  }

  // The steady sweep's control call: GPU count and queued events, with the same deadline.
  platform::Result<void> poll(Sweep& out) override {
    auto p = std::make_shared<Poll>();
    auto lib = lib_;
    nvmlEventSet_t set = event_set_;
    auto ran =
        on_control([lib, set, p] { poll_on_worker(lib->api(), set, *p); }, "nvmlDeviceGetCount_v2");
    if (!ran) {
      return ran;
    }
    if (p->count_rc != NVML_SUCCESS) {
      return tl::unexpected(nvml_error(p->count_rc, "nvmlDeviceGetCount_v2"));
    }
    for (const auto& e : p->events) {
      on_event(e, out);
    }
    if (p->count != gpus_.size()) {
      platform::log(platform::Level::notice, kComponent,
                    platform::LogLine("GPU count changed, discovering again")
                        .kv("before", static_cast<std::int64_t>(gpus_.size()))
                        .kv("now", p->count));
      return discover(out, false);
    }
    return {};
  }

  void on_event(const nvmlEventData_t& e, Sweep& out) {
    if ((e.eventType & nvmlEventTypeXidCriticalError) == 0) {
      return;
    }
    auto it = std::find_if(gpus_.begin(), gpus_.end(),
                           [&](const Gpu& g) { return g.handle == e.device; });
    DeviceEvent ev;
    ev.severity = 4;
    std::string xid = std::to_string(e.eventData);
    if (it != gpus_.end()) {
      it->last_xid = e.eventData;
      ev.message = "GPU " + std::to_string(it->index) + " (" + it->uuid + "): XID " + xid;
      ev.fields = {{"UUID", it->uuid},
                   {"gpu", std::to_string(it->index)},
                   {"pci_bus_id", it->bus_id},
                   {"xid", xid}};
    } else {
      // NVML passes a null device for an XID it cannot attribute (e.g. 79 before the handle).
      ev.message = "XID " + xid + " (no GPU named)";
      ev.fields = {{"xid", xid}};
    }
    platform::log(platform::Level::warning, kComponent,
                  platform::LogLine("XID error").kv("msg", ev.message));
    out.events.push_back(std::move(ev));
  }

  static std::string who(const Gpu& g) {
    return "GPU " + std::to_string(g.index) + " (" + g.uuid + ")";
  }
  static Labels event_fields(const Gpu& g) {
    return {{"UUID", g.uuid}, {"gpu", std::to_string(g.index)}, {"pci_bus_id", g.bus_id}};
  }

  void lost_event(const Gpu& g, Sweep& out) {
    out.events.push_back(accelerators::lost_event(kComponent, who(g), "NVML_ERROR_GPU_IS_LOST",
                                                  event_fields(g)));
  }

  void health_event(const Gpu& g, bool degraded, Sweep& out) {
    out.events.push_back(accelerators::health_event(kComponent, who(g), degraded, "an NVML call",
                                                    options_.call_timeout, event_fields(g)));
  }

  void read_gpus(Sweep& out) {
    // Every idle GPU is asked at once, each on its own thread, so one wedged GPU costs the
    // sweep at most one deadline and the others nothing.
    accelerators::read_all(
        gpus_, [](Gpu& g) -> accelerators::DeviceSlot& { return g.slot; },
        [&](Gpu& g) {
          auto lib = lib_;
          g.read = std::make_shared<GpuRead>();
          g.read->processes.reserve(8);
          auto read = g.read;
          nvmlDevice_t dev = g.handle;
          g.slot.worker->submit([lib, read, dev] { read_gpu(lib->api(), dev, *read); });
        },
        options_.call_timeout);
    out.catalog = catalog_;
    std::vector<Labels> keys;
    std::vector<std::uint64_t> process_memory;
    accelerators::Summary summary;
    summary.total = static_cast<std::int64_t>(gpus_.size());
    for (auto& g : gpus_) {
      auto settled = accelerators::settle(g.slot, g.slot.fresh && g.read->lost);
      const bool answering = settled.answering;
      switch (settled.change) {
        case accelerators::HealthChange::lost:
          lost_event(g, out);
          break;
        case accelerators::HealthChange::degraded:
          health_event(g, true, out);
          break;
        case accelerators::HealthChange::recovered:
          health_event(g, false, out);
          break;
        case accelerators::HealthChange::none:
          break;
      }
      push(out, g.first_series + kMetricCount + 1, answering ? 1 : 0);
      push(out, g.first_series + kMetricCount + 2, g.slot.degraded ? 1 : 0);
      if (!answering) {
        continue;  // lost or hung: no values, not even the last ones
      }
      const GpuRead& r = *g.read;
      for (int m = 0; m < kMetricCount; ++m) {
        if (r.values[m]) {
          push(out, g.first_series + m, *r.values[m]);
        }
      }
      if (g.xid_registered || g.last_xid) {
        push(out, g.first_series + kMetricCount, static_cast<std::int64_t>(g.last_xid.value_or(0)));
      }
      out.errors += r.errors;
      if (r.errors > 0 && g.complaint.complain()) {
        platform::log(
            platform::Level::debug, kComponent,
            platform::LogLine("reading skipped").kv("gpu", g.index).kv("err", r.first_error));
      } else if (r.errors == 0) {
        g.complaint.release();
      }
      bool in_use = (r.processes_ok && !r.processes.empty()) || r.values[kGpuUtil].value_or(0) > 0;
      (in_use ? summary.busy : summary.idle) += 1;
      summary.free_memory_bytes += r.fb_free_bytes;
      if (r.values[kPowerLimit] && r.values[kPowerUsage]) {
        summary.power_headroom_mw += std::max<std::int64_t>(
            0, *r.values[kPowerLimit] - *r.values[kPowerUsage]);  // both in mW
      }
      for (const auto& p : r.processes) {
        auto owner = accelerators::process_owner(options_.roots, p.pid);
        keys.push_back({{"gpu", std::to_string(g.index)},
                        {"UUID", g.uuid},
                        {"pid", std::to_string(p.pid)},
                        {"uid", std::move(owner.uid)},
                        {"cgroup", std::move(owner.cgroup)}});
        process_memory.push_back(p.usedGpuMemory);
      }
    }
    accelerators::push_summary(out, summary_series_, summary);
    processes_.publish(keys, process_memory, NVML_VALUE_NOT_AVAILABLE, base_catalog_,
                       process_family_, catalog_, out);
  }

  static void push(Sweep& out, std::uint32_t series, std::int64_t v) {
    out.readings.push_back({series, Value::of_signed(v)});
  }

  NvmlOptions options_;
  nvmlEventSet_t event_set_ = nullptr;
  std::string driver_version_;
  std::vector<Gpu> gpus_;
  std::shared_ptr<const Catalog> base_catalog_;
  std::shared_ptr<const Catalog> catalog_;
  std::uint32_t summary_series_ = 0;
  std::uint32_t process_family_ = 0;
  accelerators::ProcessSeries processes_;
};

}  // namespace

std::unique_ptr<Driver> make_nvml_driver(NvmlOptions options) {
  return std::make_unique<NvmlDriver>(std::move(options));
}

}  // namespace gridnode::drivers
