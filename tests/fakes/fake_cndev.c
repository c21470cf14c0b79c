/* A fake libcndev.so (Cambricon's CNDev) for tests: the entry points the cndev driver looks up,
 * with the types, versioned struct layouts and return codes of the public cndev.h that
 * Cambricon's mlu-exporter ships (github.com/Cambricon/mlu-exporter, pkg/cndev/include/cndev.h,
 * Apache-2.0), declared here independently of the driver's declarations. Driven by a scenario
 * file named by $FAKE_CNDEV_SCENARIO, read at cndevInit. The driver loads it through its real
 * dlopen path.
 *
 * Scenario (one directive per line, '#' starts a comment; MLU is an index or '*'):
 *   mlus N                       how many devices cndevGetDeviceCount reports (default 1)
 *   init_error CODE              cndevInit returns CODE (1: no driver, 13: no permission)
 *   model MLU TEXT               cndevGetCardNameStringByDevId (default MLU370-X8)
 *   uuid MLU TEXT / sn MLU HEX   cndevGetUUID, cndevGetCardSN
 *   value MLU FIELD V0 V1 ...    per step, the last repeats; a field without a value answers
 *                                CNDEV_ERROR_NOT_SUPPORTED. Fields: health board_temp chip_temp
 *                                power_w power_cap_w mem_total mem_used (MB) util (%)
 *   error MLU FUNCTION CODE [FROM [TO]]   FUNCTION returns CODE at steps FROM..TO
 *   problem MLU STEP             every call for MLU answers CNDEV_ERROR_IN_PROBLEM from STEP on
 *   hang MLU FUNCTION STEP MS [TO]        FUNCTION sleeps MS ms first, at steps STEP..TO
 *   process MLU PID KIB [FROM [TO]]       a process (cndevGetProcessInfo)
 * The step is the number of cndevGetDeviceCount calls since cndevInit, minus one (one a sweep).
 * Built with FAKE_CNDEV_OLD, it lacks cndevGetDeviceHandleByIndex. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

typedef enum {
  CNDEV_SUCCESS = 0,
  CNDEV_ERROR_NO_DRIVER = 1,
  CNDEV_ERROR_UNSUPPORTED_API_VERSION = 3,
  CNDEV_ERROR_UNINITIALIZED = 4,
  CNDEV_ERROR_INVALID_ARGUMENT = 5,
  CNDEV_ERROR_INVALID_DEVICE_ID = 6,
  CNDEV_ERROR_INSUFFICIENT_SPACE = 9,
  CNDEV_ERROR_NOT_SUPPORTED = 10,
  CNDEV_ERROR_IN_PROBLEM = 18,
} cndevRet_t;
#define CNDEV_VERSION_6 6
#define CNDEV_UUID_SIZE 37
typedef int32_t cndevDevice_t;

typedef struct { int32_t version; uint32_t number; } cndevCardInfo_t;
typedef struct {
  int32_t version, board, cluster[20], memoryDie[8], chip, airInlet, airOutlet, memory,
      videoInput, cpu, isp;
} cndevTemperatureInfo_t;
typedef struct {
  int64_t physicalMemoryTotal, physicalMemoryUsed, reservedMemory, virtualMemoryTotal,
      virtualMemoryUsed;
  uint64_t globalMemory, reserved[16];
} cndevMemoryInfoV2_t;
typedef struct { int32_t version, averageCoreUtilization, coreUtilization[80]; } cndevUtilizationInfo_t;
typedef struct { int32_t version; uint8_t uuid[CNDEV_UUID_SIZE]; uint64_t ncsUUID64; } cndevUUID_t;
typedef struct { int32_t version; uint64_t sn, motherBoardSn; } cndevCardSN_t;
typedef struct { int32_t version; uint32_t pid; uint64_t physicalMemoryUsed, virtualMemoryUsed; } cndevProcessInfo_t;
typedef struct { int32_t version, health; int deviceState, driverState; } cndevCardHealthState_t;
typedef struct { int32_t usage, cap, machine, tdp, maxPower, reserved[16]; } cndevDevicePowerInfo_t;

_Static_assert(sizeof(cndevTemperatureInfo_t) == 148, "cndevTemperatureInfo_t");
_Static_assert(sizeof(cndevMemoryInfoV2_t) == 176, "cndevMemoryInfoV2_t");
_Static_assert(sizeof(cndevUUID_t) == 56, "cndevUUID_t");
_Static_assert(sizeof(cndevCardSN_t) == 24, "cndevCardSN_t");
_Static_assert(sizeof(cndevProcessInfo_t) == 24, "cndevProcessInfo_t");
_Static_assert(sizeof(cndevDevicePowerInfo_t) == 84, "cndevDevicePowerInfo_t");

#define MAX_MLUS 32
#define MAX_STEPS 32
#define MAX_RULES 64

enum Field { F_HEALTH, F_BOARD, F_CHIP, F_POWER, F_CAP, F_MEM_TOTAL, F_MEM_USED, F_UTIL, F_COUNT };
static const char* const kFields[F_COUNT] = {"health", "board_temp", "chip_temp", "power_w",
                                             "power_cap_w", "mem_total", "mem_used", "util"};
struct Series { int n; long long v[MAX_STEPS]; };
struct Mlu {
  char model[64], uuid[CNDEV_UUID_SIZE];
  unsigned long long sn;
  struct Series field[F_COUNT];
  int problem_from;
};
struct Rule { char kind; int mlu; char function[64]; long long a, b; int from, to; };
static struct {
  int mlus, init_error, initialized, step, nrules;
  struct Mlu m[MAX_MLUS];
  struct Rule rules[MAX_RULES];
} g;

static void load(void) {
  memset(&g, 0, sizeof g);
  g.mlus = 1;
  g.step = -1;
  for (int i = 0; i < MAX_MLUS; ++i) {
    strcpy(g.m[i].model, "MLU370-X8");
    snprintf(g.m[i].uuid, sizeof g.m[i].uuid, "30000000-0000-0000-0000-0000000000%02d", i);
    g.m[i].sn = 0x1000ull + (unsigned long long)i;
    g.m[i].problem_from = -1;
  }
  const char* path = getenv("FAKE_CNDEV_SCENARIO");
  FILE* f = path ? fopen(path, "r") : NULL;
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    char* hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char* tok[40];
    int n = 0;
    for (char* t = strtok(line, " \t\r\n"); t && n < 40; t = strtok(NULL, " \t\r\n")) tok[n++] = t;
    if (n < 2) continue;
    if (!strcmp(tok[0], "mlus")) { g.mlus = atoi(tok[1]) > MAX_MLUS ? MAX_MLUS : atoi(tok[1]); continue; }
    if (!strcmp(tok[0], "init_error")) { g.init_error = atoi(tok[1]); continue; }
    int mlu = strcmp(tok[1], "*") == 0 ? -1 : atoi(tok[1]);
    for (int i = 0; i < MAX_MLUS; ++i) {
      if (mlu >= 0 && i != mlu) continue;
      struct Mlu* m = &g.m[i];
      if (!strcmp(tok[0], "model") && n >= 3) snprintf(m->model, sizeof m->model, "%s", tok[2]);
      if (!strcmp(tok[0], "uuid") && n >= 3) snprintf(m->uuid, sizeof m->uuid, "%s", tok[2]);
      if (!strcmp(tok[0], "sn") && n >= 3) m->sn = strtoull(tok[2], NULL, 16);
      if (!strcmp(tok[0], "problem") && n >= 3) m->problem_from = atoi(tok[2]);
      if (!strcmp(tok[0], "value") && n >= 4) {
        for (int k = 0; k < F_COUNT; ++k) {
          if (strcmp(tok[2], kFields[k])) continue;
          m->field[k].n = 0;
          for (int j = 3; j < n && m->field[k].n < MAX_STEPS; ++j) m->field[k].v[m->field[k].n++] = atoll(tok[j]);
        }
      }
    }
    if (g.nrules >= MAX_RULES) continue;
    struct Rule* r = &g.rules[g.nrules];
    memset(r, 0, sizeof *r);
    r->mlu = mlu;
    r->to = 1 << 30;
    if (!strcmp(tok[0], "error") && n >= 4) {
      r->kind = 'e'; snprintf(r->function, sizeof r->function, "%s", tok[2]); r->a = atoll(tok[3]);
      if (n >= 5) r->from = atoi(tok[4]);
      if (n >= 6) r->to = atoi(tok[5]);
      g.nrules++;
    } else if (!strcmp(tok[0], "hang") && n >= 5) {
      r->kind = 'h'; snprintf(r->function, sizeof r->function, "%s", tok[2]);
      r->from = atoi(tok[3]); r->a = atoll(tok[4]);
      if (n >= 6) r->to = atoi(tok[5]);
      g.nrules++;
    } else if (!strcmp(tok[0], "process") && n >= 4) {
      r->kind = 'p'; r->a = atoll(tok[2]); r->b = atoll(tok[3]);
      if (n >= 5) r->from = atoi(tok[4]);
      if (n >= 6) r->to = atoi(tok[5]);
      g.nrules++;
    }
  }
  fclose(f);
}

static int step(void) { return g.step < 0 ? 0 : g.step; }

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static cndevRet_t enter(const char* function, cndevDevice_t dev) {
  if (!g.initialized) return CNDEV_ERROR_UNINITIALIZED;
  if (dev < 0 || dev >= g.mlus) return CNDEV_ERROR_INVALID_DEVICE_ID;
  for (int i = 0; i < g.nrules; ++i) {
    struct Rule* r = &g.rules[i];
    if (r->kind == 'h' && (r->mlu < 0 || r->mlu == dev) && !strcmp(r->function, function) &&
        step() >= r->from && step() <= r->to) sleep_ms(r->a);
  }
  if (g.m[dev].problem_from >= 0 && step() >= g.m[dev].problem_from) return CNDEV_ERROR_IN_PROBLEM;
  for (int i = 0; i < g.nrules; ++i) {
    struct Rule* r = &g.rules[i];
    if (r->kind == 'e' && (r->mlu < 0 || r->mlu == dev) && !strcmp(r->function, function) &&
        step() >= r->from && step() <= r->to) return (cndevRet_t)r->a;
  }
  return CNDEV_SUCCESS;
}

static cndevRet_t field(cndevDevice_t dev, enum Field f, long long* out) {
  const struct Series* s = &g.m[dev].field[f];
  if (s->n == 0) return CNDEV_ERROR_NOT_SUPPORTED;
  *out = s->v[step() < s->n ? step() : s->n - 1];
  return CNDEV_SUCCESS;
}

#define VERSIONED(p) \
  if ((p) == NULL) return CNDEV_ERROR_INVALID_ARGUMENT; \
  if ((p)->version > CNDEV_VERSION_6 || (p)->version < 1) return CNDEV_ERROR_UNSUPPORTED_API_VERSION

EXPORT cndevRet_t cndevInit(int32_t reserved) {
  (void)reserved;
  load();
  if (g.init_error) return (cndevRet_t)g.init_error;
  g.initialized = 1;
  return CNDEV_SUCCESS;
}
EXPORT cndevRet_t cndevRelease(void) { g.initialized = 0; return CNDEV_SUCCESS; }

EXPORT cndevRet_t cndevGetDeviceCount(cndevCardInfo_t* info) {
  if (!g.initialized) return CNDEV_ERROR_UNINITIALIZED;
  VERSIONED(info);
  g.step++;
  info->number = (uint32_t)g.mlus;
  return CNDEV_SUCCESS;
}

#ifndef FAKE_CNDEV_OLD
EXPORT cndevRet_t cndevGetDeviceHandleByIndex(int32_t index, cndevDevice_t* handle) {
  cndevRet_t rc = enter("cndevGetDeviceHandleByIndex", index);
  if (rc != CNDEV_SUCCESS) return rc;
  *handle = index;
  return CNDEV_SUCCESS;
}
#endif

EXPORT const char* cndevGetCardNameStringByDevId(cndevDevice_t dev) {
  return dev >= 0 && dev < g.mlus ? g.m[dev].model : "Unknown";
}

EXPORT cndevRet_t cndevGetUUID(cndevUUID_t* u, cndevDevice_t dev) {
  VERSIONED(u);
  cndevRet_t rc = enter("cndevGetUUID", dev);
  if (rc != CNDEV_SUCCESS) return rc;
  memset(u->uuid, 0, sizeof u->uuid);
  memcpy(u->uuid, g.m[dev].uuid, strlen(g.m[dev].uuid));
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetCardSN(cndevCardSN_t* s, cndevDevice_t dev) {
  VERSIONED(s);
  cndevRet_t rc = enter("cndevGetCardSN", dev);
  if (rc != CNDEV_SUCCESS) return rc;
  s->sn = g.m[dev].sn;
  s->motherBoardSn = 0;
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetCardHealthState(cndevCardHealthState_t* h, cndevDevice_t dev) {
  VERSIONED(h);
  cndevRet_t rc = enter("cndevGetCardHealthState", dev);
  long long v = 0;
  if (rc != CNDEV_SUCCESS || (rc = field(dev, F_HEALTH, &v)) != CNDEV_SUCCESS) return rc;
  h->health = (int32_t)v;
  h->deviceState = v ? 1 : 0;
  h->driverState = 4;
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetTemperatureInfo(cndevTemperatureInfo_t* t, cndevDevice_t dev) {
  VERSIONED(t);
  cndevRet_t rc = enter("cndevGetTemperatureInfo", dev);
  long long board = 0, chip = 0;
  if (rc != CNDEV_SUCCESS || (rc = field(dev, F_BOARD, &board)) != CNDEV_SUCCESS) return rc;
  if (field(dev, F_CHIP, &chip) != CNDEV_SUCCESS) chip = board;
  int32_t version = t->version;
  memset(t, 0, sizeof *t);
  t->version = version;
  t->board = (int32_t)board;
  t->chip = (int32_t)chip;
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetDevicePowerInfo(cndevDevicePowerInfo_t* p, cndevDevice_t dev) {
  if (p == NULL) return CNDEV_ERROR_INVALID_ARGUMENT;
  cndevRet_t rc = enter("cndevGetDevicePowerInfo", dev);
  long long usage = 0, cap = 0;
  if (rc != CNDEV_SUCCESS || (rc = field(dev, F_POWER, &usage)) != CNDEV_SUCCESS) return rc;
  (void)field(dev, F_CAP, &cap);
  memset(p, 0, sizeof *p);
  p->usage = (int32_t)usage;
  p->cap = (int32_t)cap;
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetMemoryUsageV2(cndevMemoryInfoV2_t* m, cndevDevice_t dev) {
  if (m == NULL) return CNDEV_ERROR_INVALID_ARGUMENT;
  cndevRet_t rc = enter("cndevGetMemoryUsageV2", dev);
  long long total = 0, used = 0;
  if (rc != CNDEV_SUCCESS || (rc = field(dev, F_MEM_TOTAL, &total)) != CNDEV_SUCCESS) return rc;
  if ((rc = field(dev, F_MEM_USED, &used)) != CNDEV_SUCCESS) return rc;
  memset(m, 0, sizeof *m);
  m->physicalMemoryTotal = total;
  m->physicalMemoryUsed = used;
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetDeviceUtilizationInfo(cndevUtilizationInfo_t* u, cndevDevice_t dev) {
  VERSIONED(u);
  cndevRet_t rc = enter("cndevGetDeviceUtilizationInfo", dev);
  long long v = 0;
  if (rc != CNDEV_SUCCESS || (rc = field(dev, F_UTIL, &v)) != CNDEV_SUCCESS) return rc;
  u->averageCoreUtilization = (int32_t)v;
  return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetProcessInfo(uint32_t* count, cndevProcessInfo_t* procs, cndevDevice_t dev) {
  if (count == NULL || (procs == NULL && *count > 0)) return CNDEV_ERROR_INVALID_ARGUMENT;
  cndevRet_t rc = enter("cndevGetProcessInfo", dev);
  if (rc != CNDEV_SUCCESS) return rc;
  uint32_t n = 0, room = *count;
  for (int i = 0; i < g.nrules; ++i) {
    const struct Rule* r = &g.rules[i];
    if (r->kind != 'p' || (r->mlu >= 0 && r->mlu != dev) || step() < r->from || step() > r->to) continue;
    if (n < room) {
      if (procs[n].version > CNDEV_VERSION_6 || procs[n].version < 1) return CNDEV_ERROR_UNSUPPORTED_API_VERSION;
      procs[n].pid = (uint32_t)r->a;
      procs[n].physicalMemoryUsed = (uint64_t)r->b;
      procs[n].virtualMemoryUsed = 0;
    }
    ++n;
  }
  *count = n;
  return n > room ? CNDEV_ERROR_INSUFFICIENT_SPACE : CNDEV_SUCCESS;
}
