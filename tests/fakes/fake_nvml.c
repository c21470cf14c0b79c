/* A fake libnvidia-ml.so.1 for tests and benchmarks: the same C ABI as NVIDIA's library (the
 * entry points the nvml driver looks up, with nvml.h's types, values and struct layouts,
 * declared here independently of the driver's own declarations so that a mistake in one is not
 * silently shared), driven by a scenario file named by $FAKE_NVML_SCENARIO, read at
 * nvmlInit_v2. The driver under test loads it through its real dlopen path and cannot tell it
 * from the real one.
 *
 * Scenario (one directive per line, '#' starts a comment; GPU is an index or '*' for all):
 *   gpus N                         how many GPUs nvmlDeviceGetCount_v2 reports (default 1)
 *   driver_version TEXT            nvmlSystemGetDriverVersion
 *   init_error CODE                nvmlInit_v2 returns CODE (e.g. 18: version mismatch)
 *   name GPU TEXT...               nvmlDeviceGetName (rest of the line)
 *   uuid GPU TEXT / bus GPU TEXT / minor GPU N
 *   value GPU FIELD V0 V1 ...      the field's value at step 0, 1, ...; the last one repeats.
 *                                  A field without a value answers NVML_ERROR_NOT_SUPPORTED.
 *   error GPU FUNCTION CODE [FROM [TO]]   FUNCTION returns CODE at steps FROM..TO
 *   lost GPU STEP                  every call for GPU answers GPU_IS_LOST from STEP on
 *   hang GPU FUNCTION STEP MS [TO] FUNCTION sleeps MS ms before answering, at steps STEP..TO
 *   xid GPU STEP XID               an XID critical error event, queued at STEP
 *   process GPU PID BYTES [FROM [TO]]     a running compute process
 *   power_limit_state PATH         where the limits set by nvmlDeviceSetPowerManagementLimit
 *                                  are kept ("UUID MW" lines), read at nvmlInit_v2: like the
 *                                  kernel driver's, they outlive the process that set them,
 *                                  and stay with their GPU whatever index a later scenario
 *                                  gives its UUID. Without it they live in this process only.
 * The step is the number of nvmlDeviceGetCount_v2 calls since nvmlInit_v2, minus one: the
 * driver calls it exactly once per sweep. Fields: gpu_temp mem_temp power_mw energy_mj
 * power_limit_mw sm_clock mem_clock util_gpu util_mem enc dec fb_total fb_reserved fb_used
 * fb_free (bytes) pcie_replay ecc_sbe_vol ecc_dbe_vol ecc_sbe_agg ecc_dbe_agg retired_sbe
 * retired_dbe retired_pending remap_corr remap_unc remap_pending remap_failure clock_reasons
 * fan pstate mig power_limit_min_mw power_limit_max_mw power_limit_default_mw.
 * Power limits: nvmlDeviceSetPowerManagementLimit refuses (INVALID_ARGUMENT) a value outside
 * power_limit_min_mw..power_limit_max_mw when both are scripted; once set, the value is what
 * nvmlDeviceGetPowerManagementLimit and nvmlDeviceGetEnforcedPowerLimit answer (instead of
 * power_limit_mw) at every later step. Make the setter fail with an error rule, e.g.
 * "error 0 nvmlDeviceSetPowerManagementLimit 4" (NO_PERMISSION, as for a non-root caller).
 * Built with FAKE_NVML_OLD, it lacks entry points an older driver lacks:
 * nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetRemappedRows, nvmlDeviceGetComputeRunningProcesses_v3
 * (it has _v2) and nvmlDeviceGetCurrentClocksEventReasons (it has the older
 * nvmlDeviceGetCurrentClocksThrottleReasons), and, so that a test can see the driver go
 * without them, nvmlDeviceSetPowerManagementLimit and
 * nvmlDeviceGetPowerManagementLimitConstraints (NVIDIA's libraries have had both since r304).
 * XID rules must be listed in step order. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_TIMEOUT = 10,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_UNKNOWN = 999
};

struct nvmlDevice_st {
  int index;
};
typedef struct nvmlDevice_st* nvmlDevice_t;
struct nvmlEventSet_st {
  int unused;
};
typedef struct nvmlEventSet_st* nvmlEventSet_t;

typedef struct {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
} nvmlPciInfo_t;
typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
  unsigned int version;
  unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
  unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef union {
  double dVal;
  int siVal;
  unsigned int uiVal;
  unsigned long ulVal;
  unsigned long long ullVal;
  long long sllVal;
} nvmlValue_t;
typedef struct {
  unsigned int fieldId, scopeId;
  long long timestamp, latencyUsec;
  int valueType;
  nvmlReturn_t nvmlReturn;
  nvmlValue_t value;
} nvmlFieldValue_t;
typedef struct {
  nvmlDevice_t device;
  unsigned long long eventType, eventData;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t");
_Static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t");
_Static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t");
_Static_assert(sizeof(nvmlEventData_t) == 32, "nvmlEventData_t");

#define MAX_GPUS 64
#define MAX_STEPS 32
#define MAX_RULES 64

enum Field {
  F_GPU_TEMP, F_MEM_TEMP, F_POWER_MW, F_ENERGY_MJ, F_POWER_LIMIT_MW, F_SM_CLOCK, F_MEM_CLOCK,
  F_UTIL_GPU, F_UTIL_MEM, F_ENC, F_DEC, F_FB_TOTAL, F_FB_RESERVED, F_FB_USED, F_FB_FREE,
  F_PCIE_REPLAY, F_ECC_SBE_VOL, F_ECC_DBE_VOL, F_ECC_SBE_AGG, F_ECC_DBE_AGG, F_RETIRED_SBE,
  F_RETIRED_DBE, F_RETIRED_PENDING, F_REMAP_CORR, F_REMAP_UNC, F_REMAP_PENDING, F_REMAP_FAILURE,
  F_CLOCK_REASONS, F_FAN, F_PSTATE, F_MIG, F_POWER_MIN_MW, F_POWER_MAX_MW, F_POWER_DEFAULT_MW,
  F_COUNT
};
static const char* const kFieldNames[F_COUNT] = {
    "gpu_temp", "mem_temp", "power_mw", "energy_mj", "power_limit_mw", "sm_clock", "mem_clock",
    "util_gpu", "util_mem", "enc", "dec", "fb_total", "fb_reserved", "fb_used", "fb_free",
    "pcie_replay", "ecc_sbe_vol", "ecc_dbe_vol", "ecc_sbe_agg", "ecc_dbe_agg", "retired_sbe",
    "retired_dbe", "retired_pending", "remap_corr", "remap_unc", "remap_pending",
    "remap_failure", "clock_reasons", "fan", "pstate", "mig", "power_limit_min_mw",
    "power_limit_max_mw", "power_limit_default_mw"};

struct Series {
  int n;
  unsigned long long v[MAX_STEPS];
};
struct Gpu {
  struct nvmlDevice_st dev;
  char name[96], uuid[96], bus[32];
  unsigned minor;
  int lost_at; /* -1: never */
  struct Series field[F_COUNT];
  unsigned set_limit; /* atomic; 0: never set, the scenario's power_limit_mw answers */
};
struct Rule { /* error, hang, xid, process */
  int gpu; /* -1: all */
  char function[64];
  long long a, b, c; /* error: code, from, to; hang: step, ms; xid: step, xid; process: pid, bytes */
  long long from, to;
};
static struct {
  int gpus;
  char driver_version[80];
  int init_error;
  struct Gpu gpu[MAX_GPUS];
  struct Rule errors[MAX_RULES];
  int n_errors;
  struct Rule hangs[MAX_RULES];
  int n_hangs;
  struct Rule xids[MAX_RULES];
  int n_xids;
  struct Rule procs[MAX_RULES];
  int n_procs;
  char power_limit_state[512];
} S;
static int g_step = -1;       /* atomic */
static int g_xid_next = 0;    /* atomic: next xid rule to deliver */
static int g_initialized = 0; /* atomic */
static struct nvmlEventSet_st g_set;

static int step_now(void) {
  int s = __atomic_load_n(&g_step, __ATOMIC_SEQ_CST);
  return s < 0 ? 0 : s;
}

static int parse_gpu(const char* t) { return strcmp(t, "*") == 0 ? -1 : atoi(t); }

static void defaults(void) {
  memset(&S, 0, sizeof S);
  S.gpus = 1;
  strcpy(S.driver_version, "535.104.05");
  for (int i = 0; i < MAX_GPUS; ++i) {
    struct Gpu* g = &S.gpu[i];
    g->dev.index = i;
    snprintf(g->name, sizeof g->name, "NVIDIA H100 80GB HBM3");
    snprintf(g->uuid, sizeof g->uuid, "GPU-00000000-0000-0000-0000-%012d", i);
    snprintf(g->bus, sizeof g->bus, "00000000:%02X:00.0", 0x17 + i);
    g->minor = (unsigned)i;
    g->lost_at = -1;
  }
}

static void set_field(int gpu, int f, char* rest) {
  struct Series s = {0, {0}};
  for (char* tok = strtok(rest, " \t\n"); tok != NULL && s.n < MAX_STEPS;
       tok = strtok(NULL, " \t\n")) {
    s.v[s.n++] = strtoull(tok, NULL, 0);
  }
  for (int i = 0; i < MAX_GPUS; ++i) {
    if (gpu < 0 || gpu == i) S.gpu[i].field[f] = s;
  }
}

static void load(void) {
  defaults();
  const char* path = getenv("FAKE_NVML_SCENARIO");
  if (path == NULL || *path == '\0') return;
  FILE* f = fopen(path, "r");
  if (f == NULL) return;
  char line[1024];
  while (fgets(line, sizeof line, f) != NULL) {
    char* hash = strchr(line, '#');
    if (hash != NULL) *hash = '\0';
    char word[64] = "", a1[128] = "", a2[128] = "";
    int n = 0;
    if (sscanf(line, "%63s %127s %n", word, a1, &n) < 1) continue;
    char* rest = line + n;
    if (strcmp(word, "gpus") == 0) {
      S.gpus = atoi(a1);
      if (S.gpus > MAX_GPUS) S.gpus = MAX_GPUS;
    } else if (strcmp(word, "driver_version") == 0) {
      snprintf(S.driver_version, sizeof S.driver_version, "%.79s", a1);
    } else if (strcmp(word, "init_error") == 0) {
      S.init_error = atoi(a1);
    } else if (strcmp(word, "name") == 0 || strcmp(word, "uuid") == 0 ||
               strcmp(word, "bus") == 0 || strcmp(word, "minor") == 0) {
      int gpu = atoi(a1);
      if (gpu < 0 || gpu >= MAX_GPUS) continue;
      rest[strcspn(rest, "\n")] = '\0';
      struct Gpu* g = &S.gpu[gpu];
      if (word[0] == 'n') snprintf(g->name, sizeof g->name, "%s", rest);
      if (word[0] == 'u') snprintf(g->uuid, sizeof g->uuid, "%s", rest);
      if (word[0] == 'b') snprintf(g->bus, sizeof g->bus, "%s", rest);
      if (word[0] == 'm') g->minor = (unsigned)atoi(rest);
    } else if (strcmp(word, "value") == 0) {
      int n2 = 0;
      if (sscanf(rest, "%127s %n", a2, &n2) < 1) continue;
      for (int fi = 0; fi < F_COUNT; ++fi) {
        if (strcmp(kFieldNames[fi], a2) == 0) set_field(parse_gpu(a1), fi, rest + n2);
      }
    } else if (strcmp(word, "power_limit_state") == 0) {
      snprintf(S.power_limit_state, sizeof S.power_limit_state, "%s", a1);
    } else if (strcmp(word, "lost") == 0) {
      int gpu = atoi(a1);
      if (gpu >= 0 && gpu < MAX_GPUS) S.gpu[gpu].lost_at = atoi(rest);
    } else {
      struct Rule r;
      memset(&r, 0, sizeof r);
      r.gpu = parse_gpu(a1);
      r.from = 0;
      r.to = 1LL << 40;
      if (strcmp(word, "error") == 0 && S.n_errors < MAX_RULES) {
        int k = sscanf(rest, "%63s %lld %lld %lld", r.function, &r.a, &r.from, &r.to);
        if (k >= 2) S.errors[S.n_errors++] = r;
      } else if (strcmp(word, "hang") == 0 && S.n_hangs < MAX_RULES) {
        if (sscanf(rest, "%63s %lld %lld %lld", r.function, &r.a, &r.b, &r.to) >= 3)
          S.hangs[S.n_hangs++] = r;
      } else if (strcmp(word, "xid") == 0 && S.n_xids < MAX_RULES) {
        if (sscanf(rest, "%lld %lld", &r.a, &r.b) == 2) S.xids[S.n_xids++] = r;
      } else if (strcmp(word, "process") == 0 && S.n_procs < MAX_RULES) {
        if (sscanf(rest, "%lld %lld %lld %lld", &r.a, &r.b, &r.from, &r.to) >= 2)
          S.procs[S.n_procs++] = r;
      }
    }
  }
  fclose(f);
  if (S.power_limit_state[0] != '\0') {
    FILE* st = fopen(S.power_limit_state, "r");
    char uuid[96];
    unsigned mw = 0;
    while (st != NULL && fscanf(st, "%95s %u", uuid, &mw) == 2) {
      for (int i = 0; i < S.gpus && i < MAX_GPUS; ++i) {
        if (strcmp(S.gpu[i].uuid, uuid) == 0) S.gpu[i].set_limit = mw;
      }
    }
    if (st != NULL) fclose(st);
  }
}

#ifndef FAKE_NVML_OLD
/* Writes every limit set so far to power_limit_state (if named): write, then rename. */
static void save_limits(void) {
  if (S.power_limit_state[0] == '\0') return;
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", S.power_limit_state);
  FILE* st = fopen(tmp, "w");
  if (st == NULL) return;
  for (int i = 0; i < MAX_GPUS; ++i) {
    unsigned mw = __atomic_load_n(&S.gpu[i].set_limit, __ATOMIC_SEQ_CST);
    if (mw != 0) fprintf(st, "%s %u\n", S.gpu[i].uuid, mw);
  }
  fclose(st);
  rename(tmp, S.power_limit_state);
}
#endif

/* The scripted answer for FUNCTION on GPU (-1: not about one GPU) at this step, after any
 * scripted hang: NVML_SUCCESS when nothing is scripted. */
static nvmlReturn_t scripted(const char* function, int gpu) {
  int step = step_now();
  for (int i = 0; i < S.n_hangs; ++i) {
    const struct Rule* r = &S.hangs[i];
    if ((r->gpu < 0 || r->gpu == gpu) && strcmp(r->function, function) == 0 && step >= r->a &&
        step <= r->to) {
      struct timespec ts = {(time_t)(r->b / 1000), (long)(r->b % 1000) * 1000000L};
      while (nanosleep(&ts, &ts) != 0) {
      }
    }
  }
  if (gpu >= 0 && S.gpu[gpu].lost_at >= 0 && step >= S.gpu[gpu].lost_at) {
    return NVML_ERROR_GPU_IS_LOST;
  }
  for (int i = 0; i < S.n_errors; ++i) {
    const struct Rule* r = &S.errors[i];
    if ((r->gpu < 0 || r->gpu == gpu) && strcmp(r->function, function) == 0 && step >= r->from &&
        step <= r->to) {
      return (nvmlReturn_t)r->a;
    }
  }
  return NVML_SUCCESS;
}

static int gpu_of(nvmlDevice_t d) {
  if (d == NULL || d < &S.gpu[0].dev || d > &S.gpu[MAX_GPUS - 1].dev) return -2;
  return d->index;
}

/* The field's value at this step: 0 and NVML_SUCCESS, or NOT_SUPPORTED when not scripted. */
static nvmlReturn_t field(nvmlDevice_t d, int f, const char* function,
                          unsigned long long* out) {
  int gpu = gpu_of(d);
  if (gpu < 0 || gpu >= S.gpus) return NVML_ERROR_INVALID_ARGUMENT;
  if (!__atomic_load_n(&g_initialized, __ATOMIC_SEQ_CST)) return NVML_ERROR_UNINITIALIZED;
  nvmlReturn_t rc = scripted(function, gpu);
  if (rc != NVML_SUCCESS) return rc;
  const struct Series* s = &S.gpu[gpu].field[f];
  if (s->n == 0) return NVML_ERROR_NOT_SUPPORTED;
  int step = step_now();
  *out = s->v[step < s->n ? step : s->n - 1];
  return NVML_SUCCESS;
}

#define EXPORT __attribute__((visibility("default")))

EXPORT nvmlReturn_t nvmlInit_v2(void) {
  load();
  __atomic_store_n(&g_step, -1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_xid_next, 0, __ATOMIC_SEQ_CST);
  nvmlReturn_t rc = scripted("nvmlInit_v2", -1);
  if (rc == NVML_SUCCESS) rc = S.init_error;
  if (rc == NVML_SUCCESS) __atomic_store_n(&g_initialized, 1, __ATOMIC_SEQ_CST);
  return rc;
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
  __atomic_store_n(&g_initialized, 0, __ATOMIC_SEQ_CST);
  return NVML_SUCCESS;
}

EXPORT const char* nvmlErrorString(nvmlReturn_t rc) {
  return rc == NVML_SUCCESS ? "Success" : "Fake NVML error";
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  __atomic_add_fetch(&g_step, 1, __ATOMIC_SEQ_CST);
  nvmlReturn_t rc = scripted("nvmlDeviceGetCount_v2", -1);
  if (rc != NVML_SUCCESS) return rc;
  *count = (unsigned)S.gpus;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (device == NULL || index >= (unsigned)S.gpus) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = scripted("nvmlDeviceGetHandleByIndex_v2", (int)index);
  if (rc != NVML_SUCCESS) return rc;
  *device = &S.gpu[index].dev;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  if (version == NULL || length < strlen(S.driver_version) + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
  strcpy(version, S.driver_version);
  return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(nvmlDevice_t d, const char* function, const char* src,
                                char* out, unsigned int length) {
  int gpu = gpu_of(d);
  if (gpu < 0 || out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = scripted(function, gpu);
  if (rc != NVML_SUCCESS) return rc;
  if (length < strlen(src) + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
  strcpy(out, src);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* name, unsigned int length) {
  int gpu = gpu_of(d);
  return copy_string(d, "nvmlDeviceGetName", gpu >= 0 ? S.gpu[gpu].name : "", name, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* uuid, unsigned int length) {
  int gpu = gpu_of(d);
  return copy_string(d, "nvmlDeviceGetUUID", gpu >= 0 ? S.gpu[gpu].uuid : "", uuid, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t* pci) {
  int gpu = gpu_of(d);
  if (gpu < 0 || pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = scripted("nvmlDeviceGetPciInfo_v3", gpu);
  if (rc != NVML_SUCCESS) return rc;
  memset(pci, 0, sizeof *pci);
  snprintf(pci->busId, sizeof pci->busId, "%.31s", S.gpu[gpu].bus);
  snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%.15s", S.gpu[gpu].bus + 4);
  pci->pciDeviceId = 0x233010de;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int* minor) {
  int gpu = gpu_of(d);
  if (gpu < 0 || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = scripted("nvmlDeviceGetMinorNumber", gpu);
  if (rc == NVML_SUCCESS) *minor = S.gpu[gpu].minor;
  return rc;
}

#define UINT_FIELD(fn, f)                                           \
  EXPORT nvmlReturn_t fn(nvmlDevice_t d, unsigned int* out) {       \
    unsigned long long v = 0;                                       \
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;            \
    nvmlReturn_t rc = field(d, f, #fn, &v);                         \
    if (rc == NVML_SUCCESS) *out = (unsigned int)v;                 \
    return rc;                                                      \
  }
#define ULL_FIELD(fn, f)                                              \
  EXPORT nvmlReturn_t fn(nvmlDevice_t d, unsigned long long* out) {   \
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;              \
    return field(d, f, #fn, out);                                     \
  }

UINT_FIELD(nvmlDeviceGetPowerUsage, F_POWER_MW)
UINT_FIELD(nvmlDeviceGetPowerManagementDefaultLimit, F_POWER_DEFAULT_MW)
UINT_FIELD(nvmlDeviceGetPcieReplayCounter, F_PCIE_REPLAY)
UINT_FIELD(nvmlDeviceGetFanSpeed, F_FAN)
ULL_FIELD(nvmlDeviceGetTotalEnergyConsumption, F_ENERGY_MJ)
#ifdef FAKE_NVML_OLD
ULL_FIELD(nvmlDeviceGetCurrentClocksThrottleReasons, F_CLOCK_REASONS)
#else
ULL_FIELD(nvmlDeviceGetCurrentClocksEventReasons, F_CLOCK_REASONS)
#endif

/* The limit set through nvmlDeviceSetPowerManagementLimit, else the scenario's. */
static nvmlReturn_t power_limit(nvmlDevice_t d, const char* fn, unsigned int* out) {
  unsigned long long v = 0;
  if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_POWER_LIMIT_MW, fn, &v);
  int gpu = gpu_of(d);
  unsigned set = gpu >= 0 ? __atomic_load_n(&S.gpu[gpu].set_limit, __ATOMIC_SEQ_CST) : 0;
  if (set != 0 && (rc == NVML_SUCCESS || rc == NVML_ERROR_NOT_SUPPORTED)) {
    v = set;
    rc = NVML_SUCCESS;
  }
  if (rc == NVML_SUCCESS) *out = (unsigned int)v;
  return rc;
}
EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t d, unsigned int* limit) {
  return power_limit(d, "nvmlDeviceGetPowerManagementLimit", limit);
}
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int* limit) {
  return power_limit(d, "nvmlDeviceGetEnforcedPowerLimit", limit);
}

#ifndef FAKE_NVML_OLD
EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t d,
                                                                 unsigned int* min_limit,
                                                                 unsigned int* max_limit) {
  unsigned long long lo = 0, hi = 0;
  if (min_limit == NULL || max_limit == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_POWER_MIN_MW, "nvmlDeviceGetPowerManagementLimitConstraints", &lo);
  if (rc == NVML_SUCCESS)
    rc = field(d, F_POWER_MAX_MW, "nvmlDeviceGetPowerManagementLimitConstraints", &hi);
  if (rc == NVML_SUCCESS) {
    *min_limit = (unsigned)lo;
    *max_limit = (unsigned)hi;
  }
  return rc;
}

/* As NVIDIA's: root only (script NO_PERMISSION with an error rule), and within the
 * constraints. */
EXPORT nvmlReturn_t nvmlDeviceSetPowerManagementLimit(nvmlDevice_t d, unsigned int limit) {
  int gpu = gpu_of(d);
  if (gpu < 0 || gpu >= S.gpus) return NVML_ERROR_INVALID_ARGUMENT;
  if (!__atomic_load_n(&g_initialized, __ATOMIC_SEQ_CST)) return NVML_ERROR_UNINITIALIZED;
  nvmlReturn_t rc = scripted("nvmlDeviceSetPowerManagementLimit", gpu);
  if (rc != NVML_SUCCESS) return rc;
  unsigned int lo = 0, hi = 0;
  if (nvmlDeviceGetPowerManagementLimitConstraints(d, &lo, &hi) == NVML_SUCCESS &&
      (limit < lo || limit > hi)) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  __atomic_store_n(&S.gpu[gpu].set_limit, limit, __ATOMIC_SEQ_CST);
  save_limits();
  return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int* temp) {
  unsigned long long v = 0;
  if (temp == NULL || sensor != 0 /* NVML_TEMPERATURE_GPU */) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_GPU_TEMP, "nvmlDeviceGetTemperature", &v);
  if (rc == NVML_SUCCESS) *temp = (unsigned)v;
  return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t* values) {
  int gpu = gpu_of(d);
  if (gpu < 0 || values == NULL || count < 0) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = scripted("nvmlDeviceGetFieldValues", gpu);
  if (rc != NVML_SUCCESS) return rc;
  for (int i = 0; i < count; ++i) {
    unsigned long long v = 0;
    if (values[i].fieldId == 82 /* NVML_FI_DEV_MEMORY_TEMP */) {
      values[i].nvmlReturn = field(d, F_MEM_TEMP, "nvmlDeviceGetFieldValues", &v);
      values[i].valueType = 1; /* NVML_VALUE_TYPE_UNSIGNED_INT */
      values[i].value.uiVal = (unsigned)v;
    } else {
      values[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    }
  }
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int* clock) {
  unsigned long long v = 0;
  if (clock == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  int f = type == 1 /* SM */ ? F_SM_CLOCK : type == 2 /* MEM */ ? F_MEM_CLOCK : -1;
  if (f < 0) return NVML_ERROR_NOT_SUPPORTED;
  nvmlReturn_t rc = field(d, f, "nvmlDeviceGetClockInfo", &v);
  if (rc == NVML_SUCCESS) *clock = (unsigned)v;
  return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t* u) {
  unsigned long long g = 0, m = 0;
  if (u == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_UTIL_GPU, "nvmlDeviceGetUtilizationRates", &g);
  if (rc == NVML_SUCCESS) rc = field(d, F_UTIL_MEM, "nvmlDeviceGetUtilizationRates", &m);
  if (rc == NVML_SUCCESS) {
    u->gpu = (unsigned)g;
    u->memory = (unsigned)m;
  }
  return rc;
}

static nvmlReturn_t codec(nvmlDevice_t d, int f, const char* fn, unsigned int* u,
                          unsigned int* period) {
  unsigned long long v = 0;
  if (u == NULL || period == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, f, fn, &v);
  if (rc == NVML_SUCCESS) {
    *u = (unsigned)v;
    *period = 167000;
  }
  return rc;
}
EXPORT nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t d, unsigned int* u,
                                                    unsigned int* period) {
  return codec(d, F_ENC, "nvmlDeviceGetEncoderUtilization", u, period);
}
EXPORT nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t d, unsigned int* u,
                                                    unsigned int* period) {
  return codec(d, F_DEC, "nvmlDeviceGetDecoderUtilization", u, period);
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* m) {
  unsigned long long t = 0, f = 0, u = 0;
  if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_FB_TOTAL, "nvmlDeviceGetMemoryInfo", &t);
  if (rc == NVML_SUCCESS) rc = field(d, F_FB_FREE, "nvmlDeviceGetMemoryInfo", &f);
  if (rc == NVML_SUCCESS) rc = field(d, F_FB_USED, "nvmlDeviceGetMemoryInfo", &u);
  if (rc == NVML_SUCCESS) {
    m->total = t;
    m->free = f;
    m->used = u;
  }
  return rc;
}

#ifndef FAKE_NVML_OLD
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t* m) {
  unsigned long long r = 0;
  if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  /* nvml.h: NVML_STRUCT_VERSION(Memory, 2) = sizeof | 2 << 24. */
  if (m->version != ((unsigned)sizeof(nvmlMemory_v2_t) | (2U << 24))) {
    return 25; /* NVML_ERROR_ARGUMENT_VERSION_MISMATCH */
  }
  nvmlMemory_t v1;
  nvmlReturn_t rc = nvmlDeviceGetMemoryInfo(d, &v1);
  if (rc == NVML_SUCCESS) rc = field(d, F_FB_RESERVED, "nvmlDeviceGetMemoryInfo_v2", &r);
  if (rc == NVML_SUCCESS) {
    m->total = v1.total;
    m->free = v1.free;
    m->used = v1.used;
    m->reserved = r;
  }
  return rc;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter,
                                                unsigned long long* count) {
  if (count == NULL || type < 0 || type > 1 || counter < 0 || counter > 1)
    return NVML_ERROR_INVALID_ARGUMENT;
  static const int kMap[2][2] = {{F_ECC_SBE_VOL, F_ECC_SBE_AGG}, {F_ECC_DBE_VOL, F_ECC_DBE_AGG}};
  return field(d, kMap[type][counter], "nvmlDeviceGetTotalEccErrors", count);
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned int* count,
                                              unsigned long long* addresses) {
  unsigned long long v = 0;
  if (count == NULL || cause < 0 || cause > 1) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc =
      field(d, cause == 0 ? F_RETIRED_SBE : F_RETIRED_DBE, "nvmlDeviceGetRetiredPages", &v);
  if (rc != NVML_SUCCESS) return rc;
  if (*count < v) {
    *count = (unsigned)v;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (unsigned i = 0; addresses != NULL && i < v; ++i) addresses[i] = 0x1000ULL * (i + 1);
  *count = (unsigned)v;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int* pending) {
  unsigned long long v = 0;
  if (pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_RETIRED_PENDING, "nvmlDeviceGetRetiredPagesPendingStatus", &v);
  if (rc == NVML_SUCCESS) *pending = v != 0 ? 1 : 0;
  return rc;
}

#ifndef FAKE_NVML_OLD
EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int* corr,
                                              unsigned int* unc, unsigned int* pending,
                                              unsigned int* failure) {
  unsigned long long c = 0, u = 0, p = 0, f = 0;
  if (!corr || !unc || !pending || !failure) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_REMAP_CORR, "nvmlDeviceGetRemappedRows", &c);
  if (rc == NVML_SUCCESS) rc = field(d, F_REMAP_UNC, "nvmlDeviceGetRemappedRows", &u);
  if (rc == NVML_SUCCESS) rc = field(d, F_REMAP_PENDING, "nvmlDeviceGetRemappedRows", &p);
  if (rc == NVML_SUCCESS) rc = field(d, F_REMAP_FAILURE, "nvmlDeviceGetRemappedRows", &f);
  if (rc == NVML_SUCCESS) {
    *corr = (unsigned)c;
    *unc = (unsigned)u;
    *pending = (unsigned)p;
    *failure = (unsigned)f;
  }
  return rc;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t d, int* pstate) {
  unsigned long long v = 0;
  if (pstate == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_PSTATE, "nvmlDeviceGetPerformanceState", &v);
  if (rc == NVML_SUCCESS) *pstate = (int)v;
  return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int* current,
                                         unsigned int* pending) {
  unsigned long long v = 0;
  if (current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = field(d, F_MIG, "nvmlDeviceGetMigMode", &v);
  if (rc == NVML_SUCCESS) *current = *pending = (unsigned)v;
  return rc;
}

static nvmlReturn_t processes(nvmlDevice_t d, const char* fn, unsigned int* count,
                              nvmlProcessInfo_t* infos) {
  int gpu = gpu_of(d);
  if (gpu < 0 || count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  nvmlReturn_t rc = scripted(fn, gpu);
  if (rc != NVML_SUCCESS) return rc;
  int step = step_now();
  unsigned n = 0;
  for (int i = 0; i < S.n_procs; ++i) {
    const struct Rule* r = &S.procs[i];
    if (r->gpu == gpu && step >= r->from && step <= r->to) {
      if (infos != NULL && n < *count) {
        memset(&infos[n], 0, sizeof infos[n]);
        infos[n].pid = (unsigned)r->a;
        infos[n].usedGpuMemory = (unsigned long long)r->b;
        infos[n].gpuInstanceId = infos[n].computeInstanceId = 0xFFFFFFFFu;
      }
      ++n;
    }
  }
  if (n > *count) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  *count = n;
  return NVML_SUCCESS;
}
#ifndef FAKE_NVML_OLD
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int* count,
                                                            nvmlProcessInfo_t* infos) {
  return processes(d, "nvmlDeviceGetComputeRunningProcesses_v3", count, infos);
}
#endif
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int* count,
                                                            nvmlProcessInfo_t* infos) {
  return processes(d, "nvmlDeviceGetComputeRunningProcesses_v2", count, infos);
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (set == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *set = &g_set;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types,
                                             nvmlEventSet_t set) {
  int gpu = gpu_of(d);
  if (gpu < 0 || set != &g_set) return NVML_ERROR_INVALID_ARGUMENT;
  (void)types;
  return scripted("nvmlDeviceRegisterEvents", gpu);
}

EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data,
                                        unsigned int timeout_ms) {
  (void)timeout_ms; /* never waits: tests are not timed */
  if (set != &g_set || data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  int step = step_now();
  for (;;) {
    int next = __atomic_load_n(&g_xid_next, __ATOMIC_SEQ_CST);
    if (next >= S.n_xids || S.xids[next].a > step) return NVML_ERROR_TIMEOUT;
    if (!__atomic_compare_exchange_n(&g_xid_next, &next, next + 1, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
      continue;
    }
    const struct Rule* r = &S.xids[next];
    memset(data, 0, sizeof *data);
    data->device = r->gpu >= 0 && r->gpu < S.gpus ? &S.gpu[r->gpu].dev : NULL;
    data->eventType = 0x8; /* nvmlEventTypeXidCriticalError */
    data->eventData = (unsigned long long)r->b;
    data->gpuInstanceId = data->computeInstanceId = 0xFFFFFFFFu;
    return NVML_SUCCESS;
  }
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  return set == &g_set ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}
