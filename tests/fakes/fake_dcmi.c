/* A fake libdcmi.so (Huawei Ascend's DCMI) for tests and benchmarks: the entry points the ascend
 * driver looks up, with the types, struct layouts and return codes of the public
 * dcmi_interface_api.h that Ascend's MindCluster ships (github.com/Ascend/mind-cluster,
 * component/ascend-common/devmanager/dcmi/dcmi_interface_api.h, Apache-2.0; the error codes
 * DCMI_ERR_CODE_* = DCMI_ERROR_CODE_BASE (-8000) - n from the same header's earlier releases in
 * Ascend/ascend-npu-exporter). Declared here independently of the driver's own declarations,
 * so that a mistake in one is not silently shared. Driven by a scenario file named by
 * $FAKE_DCMI_SCENARIO, read at dcmi_init. The driver loads it through its real dlopen path.
 *
 * Scenario (one directive per line, '#' starts a comment; CHIP is the chip's index over all
 * cards in order, or '*' for all):
 *   cards N K [FROM]               N cards of K chips each (default: 1 card of 1 chip), from
 *                                  step FROM on (default 0): a chip added or gone
 *   init_error CODE                dcmi_init returns CODE (e.g. -8002: not permitted)
 *   name CHIP TYPE NAME VERSION    dcmi_get_device_chip_info (default Ascend 910B3 V1)
 *   die CHIP W0 W1 W2 W3 W4        dcmi_get_device_die_v2(VDIE), hex words
 *   bus CHIP DOMAIN BUS DEV FN     dcmi_get_device_pcie_info_v2, hex
 *   phy CHIP N                     dcmi_get_device_phyid_from_logicid (default: the index)
 *   value CHIP FIELD V0 V1 ...     the field's value at step 0, 1, ...; the last one repeats.
 *                                  A field without a value answers DCMI_ERR_CODE_NOT_SUPPORT.
 *   codes CHIP STEP CODE...        error codes dcmi_get_device_errorcode_v2 reports from STEP
 *                                  on (hex; none after the step: no codes); in step order
 *   error CHIP FUNCTION CODE [FROM [TO]]   FUNCTION returns CODE at steps FROM..TO
 *   lost CHIP STEP                 every call for CHIP answers DEVICE_NOT_EXIST from STEP on
 *   hang CHIP FUNCTION STEP MS [TO] FUNCTION sleeps MS ms before answering, at steps STEP..TO
 *   process CHIP PID BYTES [FROM [TO]]     a process (dcmi_get_device_resource_info)
 * Fields: health temperature power (0.1 W) voltage (0.01 V) util (AI Core %) aicore_freq (MHz)
 * hbm_total hbm_used mem_total mem_available (MB) network (a dcmi_rdfx_detect_result).
 * The step is the number of dcmi_get_card_num_list / dcmi_get_card_list calls since dcmi_init,
 * minus one: the driver makes one a sweep (two on a sweep that discovers again).
 * Built with FAKE_DCMI_OLD, it lacks dcmi_get_device_logic_id, as a DCMI before 2.0 does. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

#define DCMI_OK 0
#define DCMI_ERROR_CODE_BASE -8000
#define DCMI_ERR_CODE_INVALID_PARAMETER (DCMI_ERROR_CODE_BASE - 1)
#define DCMI_ERR_CODE_INVALID_DEVICE_ID (DCMI_ERROR_CODE_BASE - 7)
#define DCMI_ERR_CODE_DEVICE_NOT_EXIST (DCMI_ERROR_CODE_BASE - 8)
#define DCMI_ERR_CODE_NOT_REDAY (DCMI_ERROR_CODE_BASE - 12)
#define DCMI_ERR_CODE_NOT_SUPPORT (DCMI_ERROR_CODE_BASE - 255)
#define MAX_CHIP_NAME_LEN 32
#define DIE_ID_COUNT 5

struct dcmi_chip_info {
  unsigned char chip_type[MAX_CHIP_NAME_LEN];
  unsigned char chip_name[MAX_CHIP_NAME_LEN];
  unsigned char chip_ver[MAX_CHIP_NAME_LEN];
  unsigned int aicore_cnt;
};
struct dcmi_pcie_info_all {
  unsigned int venderid, subvenderid, deviceid, subdeviceid;
  int domain;
  unsigned int bdf_busid, bdf_deviceid, bdf_funcid;
  unsigned char reserve[32];
};
struct dcmi_die_id {
  unsigned int soc_die[DIE_ID_COUNT];
};
struct dcmi_hbm_info {
  unsigned long long memory_size;
  unsigned int freq;
  unsigned long long memory_usage;
  int temp;
  unsigned int bandwith_util_rate;
};
struct dcmi_get_memory_info_stru {
  unsigned long long memory_size;
  unsigned long long memory_available;
  unsigned int freq;
  unsigned long hugepagesize;
  unsigned long hugepages_total;
  unsigned long hugepages_free;
  unsigned int utiliza;
  unsigned char reserve[60];
};
struct dcmi_proc_mem_info {
  int proc_id;
  unsigned long proc_mem_usage;
};
enum dcmi_die_type { NDIE, VDIE };
enum dcmi_freq_type { DCMI_FREQ_AICORE_CURRENT_ = 7 };
enum dcmi_rdfx_detect_result { DCMI_RDFX_DETECT_OK = 0 };

_Static_assert(sizeof(struct dcmi_chip_info) == 100, "dcmi_chip_info");
_Static_assert(sizeof(struct dcmi_pcie_info_all) == 64, "dcmi_pcie_info_all");
_Static_assert(sizeof(struct dcmi_hbm_info) == 32, "dcmi_hbm_info");
_Static_assert(sizeof(struct dcmi_get_memory_info_stru) == 112, "dcmi_get_memory_info_stru");
_Static_assert(sizeof(struct dcmi_proc_mem_info) == 16, "dcmi_proc_mem_info");

#define MAX_CHIPS 64
#define MAX_STEPS 32
#define MAX_RULES 64
#define MAX_CODES 8

enum Field {
  F_HEALTH, F_TEMPERATURE, F_POWER, F_VOLTAGE, F_UTIL, F_AICORE_FREQ, F_HBM_TOTAL, F_HBM_USED,
  F_MEM_TOTAL, F_MEM_AVAILABLE, F_NETWORK, F_COUNT
};
static const char* const kFieldNames[F_COUNT] = {
    "health", "temperature", "power", "voltage", "util", "aicore_freq", "hbm_total",
    "hbm_used", "mem_total", "mem_available", "network"};

struct Series {
  int n;
  long long v[MAX_STEPS];
};
struct Chip {
  char type[MAX_CHIP_NAME_LEN], name[MAX_CHIP_NAME_LEN], ver[MAX_CHIP_NAME_LEN];
  unsigned die[DIE_ID_COUNT];
  int domain;
  unsigned bus, dev, fn;
  int phy_set;
  unsigned phy;
  struct Series field[F_COUNT];
  int lost_from; /* -1: never */
};
struct Rule { /* error, hang, process, codes */
  char kind;
  int chip; /* -1: all */
  char function[64];
  long long a, b; /* error: code; hang: ms; process: pid, bytes */
  unsigned codes[MAX_CODES];
  int ncodes;
  int from, to;
};

#define MAX_LAYOUTS 8
static struct {
  int cards, per_card; /* the layout at the current step */
  int layouts, layout[MAX_LAYOUTS][3]; /* from, cards, per_card */
  int init_error;
  struct Chip chips[MAX_CHIPS];
  struct Rule rules[MAX_RULES];
  int nrules;
  int step; /* -1 before the first card-list call */
  int initialized;
} g;

static int nchips(void) { return g.cards * g.per_card; }
static void apply_layout(void);

static void parse_chip(const char* tok, int* chip) { *chip = strcmp(tok, "*") == 0 ? -1 : atoi(tok); }

static void load(void) {
  memset(&g, 0, sizeof g);
  g.cards = 1;
  g.per_card = 1;
  g.step = -1;
  for (int i = 0; i < MAX_CHIPS; ++i) {
    struct Chip* c = &g.chips[i];
    strcpy(c->type, "Ascend");
    strcpy(c->name, "910B3");
    strcpy(c->ver, "V1");
    c->die[0] = 0x10000000u + (unsigned)i;
    c->bus = 0x01 + (unsigned)i;
    c->lost_from = -1;
  }
  const char* path = getenv("FAKE_DCMI_SCENARIO");
  FILE* f = path != NULL ? fopen(path, "r") : NULL;
  if (f == NULL) {
    return;
  }
  char line[512];
  while (fgets(line, sizeof line, f) != NULL) {
    char* hash = strchr(line, '#');
    if (hash != NULL) *hash = '\0';
    char* tok[40];
    int n = 0;
    for (char* t = strtok(line, " \t\r\n"); t != NULL && n < 40; t = strtok(NULL, " \t\r\n")) tok[n++] = t;
    if (n == 0) continue;
    int chip = 0;
    if (strcmp(tok[0], "cards") == 0 && n >= 3 && g.layouts < MAX_LAYOUTS) {
      int* l = g.layout[g.layouts++];
      l[0] = n >= 4 ? atoi(tok[3]) : 0;
      l[1] = atoi(tok[1]);
      l[2] = atoi(tok[2]);
      if (l[1] * l[2] > MAX_CHIPS) l[1] = MAX_CHIPS / (l[2] > 0 ? l[2] : 1);
    } else if (strcmp(tok[0], "init_error") == 0 && n >= 2) {
      g.init_error = atoi(tok[1]);
    } else if (n >= 2 && (parse_chip(tok[1], &chip), 1)) {
      for (int i = 0; i < MAX_CHIPS; ++i) {
        if (chip >= 0 && i != chip) continue;
        struct Chip* c = &g.chips[i];
        if (strcmp(tok[0], "name") == 0 && n >= 5) {
          snprintf(c->type, sizeof c->type, "%s", tok[2]);
          snprintf(c->name, sizeof c->name, "%s", tok[3]);
          snprintf(c->ver, sizeof c->ver, "%s", tok[4]);
        } else if (strcmp(tok[0], "die") == 0 && n >= 2 + DIE_ID_COUNT) {
          for (int w = 0; w < DIE_ID_COUNT; ++w) c->die[w] = (unsigned)strtoul(tok[2 + w], NULL, 16);
        } else if (strcmp(tok[0], "bus") == 0 && n >= 6) {
          c->domain = (int)strtol(tok[2], NULL, 16);
          c->bus = (unsigned)strtoul(tok[3], NULL, 16);
          c->dev = (unsigned)strtoul(tok[4], NULL, 16);
          c->fn = (unsigned)strtoul(tok[5], NULL, 16);
        } else if (strcmp(tok[0], "phy") == 0 && n >= 3) {
          c->phy_set = 1;
          c->phy = (unsigned)atoi(tok[2]);
        } else if (strcmp(tok[0], "value") == 0 && n >= 4) {
          for (int fi = 0; fi < F_COUNT; ++fi) {
            if (strcmp(tok[2], kFieldNames[fi]) == 0) {
              struct Series* s = &c->field[fi];
              s->n = 0;
              for (int k = 3; k < n && s->n < MAX_STEPS; ++k) s->v[s->n++] = atoll(tok[k]);
            }
          }
        } else if (strcmp(tok[0], "lost") == 0 && n >= 3) {
          c->lost_from = atoi(tok[2]);
        }
      }
      if (g.nrules < MAX_RULES) {
        struct Rule* r = &g.rules[g.nrules];
        memset(r, 0, sizeof *r);
        r->chip = chip;
        r->to = 1 << 30;
        if (strcmp(tok[0], "error") == 0 && n >= 4) {
          r->kind = 'e';
          snprintf(r->function, sizeof r->function, "%s", tok[2]);
          r->a = atoll(tok[3]);
          if (n >= 5) r->from = atoi(tok[4]);
          if (n >= 6) r->to = atoi(tok[5]);
          g.nrules++;
        } else if (strcmp(tok[0], "hang") == 0 && n >= 5) {
          r->kind = 'h';
          snprintf(r->function, sizeof r->function, "%s", tok[2]);
          r->from = atoi(tok[3]);
          r->a = atoll(tok[4]);
          if (n >= 6) r->to = atoi(tok[5]);
          g.nrules++;
        } else if (strcmp(tok[0], "process") == 0 && n >= 4) {
          r->kind = 'p';
          r->a = atoll(tok[2]);
          r->b = atoll(tok[3]);
          if (n >= 5) r->from = atoi(tok[4]);
          if (n >= 6) r->to = atoi(tok[5]);
          g.nrules++;
        } else if (strcmp(tok[0], "codes") == 0 && n >= 3) {
          r->kind = 'c';
          r->from = atoi(tok[2]);
          for (int k = 3; k < n && r->ncodes < MAX_CODES; ++k) r->codes[r->ncodes++] = (unsigned)strtoul(tok[k], NULL, 16);
          g.nrules++;
        }
      }
    }
  }
  fclose(f);
  apply_layout();
}

static int step(void) { return g.step < 0 ? 0 : g.step; }

/* The cards of the current step: the last layout whose step has come. */
static void apply_layout(void) {
  for (int i = 0; i < g.layouts; ++i) {
    if (step() >= g.layout[i][0]) {
      g.cards = g.layout[i][1];
      g.per_card = g.layout[i][2];
    }
  }
}

/* The chip a (card, device) pair names, or -1. */
static int chip_of(int card, int device) {
  if (card < 0 || card >= g.cards || device < 0 || device >= g.per_card) return -1;
  return card * g.per_card + device;
}

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* The common prologue of every per-chip call: hangs, loss and injected errors. */
static int enter(const char* function, int chip) {
  if (!g.initialized) return DCMI_ERR_CODE_NOT_REDAY;
  if (chip < 0) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
  int s = step();
  for (int i = 0; i < g.nrules; ++i) {
    struct Rule* r = &g.rules[i];
    if (r->kind == 'h' && (r->chip < 0 || r->chip == chip) && strcmp(r->function, function) == 0 &&
        s >= r->from && s <= r->to) {
      sleep_ms(r->a);
    }
  }
  if (g.chips[chip].lost_from >= 0 && s >= g.chips[chip].lost_from) return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
  for (int i = 0; i < g.nrules; ++i) {
    struct Rule* r = &g.rules[i];
    if (r->kind == 'e' && (r->chip < 0 || r->chip == chip) && strcmp(r->function, function) == 0 &&
        s >= r->from && s <= r->to) {
      return (int)r->a;
    }
  }
  return DCMI_OK;
}

static int field(int chip, enum Field f, long long* out) {
  const struct Series* s = &g.chips[chip].field[f];
  if (s->n == 0) return DCMI_ERR_CODE_NOT_SUPPORT;
  int k = step() < s->n ? step() : s->n - 1;
  *out = s->v[k];
  return DCMI_OK;
}

EXPORT int dcmi_init(void) {
  load();
  if (g.init_error != 0) return g.init_error;
  g.initialized = 1;
  return DCMI_OK;
}

static int card_list(int* card_num, int* card_list, int list_len) {
  if (!g.initialized) return DCMI_ERR_CODE_NOT_REDAY;
  if (card_num == NULL || card_list == NULL) return DCMI_ERR_CODE_INVALID_PARAMETER;
  g.step++;
  apply_layout();
  for (int i = 0; i < g.nrules; ++i) {
    struct Rule* r = &g.rules[i];
    if (r->kind == 'h' && strcmp(r->function, "dcmi_get_card_num_list") == 0 && step() >= r->from &&
        step() <= r->to) {
      sleep_ms(r->a);
    }
    if (r->kind == 'e' && strcmp(r->function, "dcmi_get_card_num_list") == 0 && step() >= r->from &&
        step() <= r->to) {
      return (int)r->a;
    }
  }
  *card_num = g.cards < list_len ? g.cards : list_len;
  for (int i = 0; i < *card_num; ++i) card_list[i] = i;
  return DCMI_OK;
}
EXPORT int dcmi_get_card_num_list(int* card_num, int* list, int list_len) { return card_list(card_num, list, list_len); }
EXPORT int dcmi_get_card_list(int* card_num, int* list, int list_len) { return card_list(card_num, list, list_len); }

EXPORT int dcmi_get_device_num_in_card(int card_id, int* device_num) {
  if (!g.initialized) return DCMI_ERR_CODE_NOT_REDAY;
  if (card_id < 0 || card_id >= g.cards || device_num == NULL) return DCMI_ERR_CODE_INVALID_PARAMETER;
  *device_num = g.per_card;
  return DCMI_OK;
}

#ifndef FAKE_DCMI_OLD
EXPORT int dcmi_get_device_logic_id(int* device_logic_id, int card_id, int device_id) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_logic_id", chip);
  if (rc != DCMI_OK) return rc;
  *device_logic_id = chip;
  return DCMI_OK;
}
#endif

EXPORT int dcmi_get_device_phyid_from_logicid(unsigned int logicid, unsigned int* phyid) {
  if ((int)logicid >= nchips()) return DCMI_ERR_CODE_INVALID_DEVICE_ID;
  *phyid = g.chips[logicid].phy_set ? g.chips[logicid].phy : logicid;
  return DCMI_OK;
}

EXPORT int dcmi_get_device_chip_info(int card_id, int device_id, struct dcmi_chip_info* info) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_chip_info", chip);
  if (rc != DCMI_OK) return rc;
  memset(info, 0, sizeof *info);
  memcpy(info->chip_type, g.chips[chip].type, strlen(g.chips[chip].type));
  memcpy(info->chip_name, g.chips[chip].name, strlen(g.chips[chip].name));
  memcpy(info->chip_ver, g.chips[chip].ver, strlen(g.chips[chip].ver));
  info->aicore_cnt = 24;
  return DCMI_OK;
}

EXPORT int dcmi_get_device_die_v2(int card_id, int device_id, enum dcmi_die_type type, struct dcmi_die_id* die) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_die_v2", chip);
  if (rc != DCMI_OK) return rc;
  if (type != VDIE) return DCMI_ERR_CODE_NOT_SUPPORT;
  memcpy(die->soc_die, g.chips[chip].die, sizeof die->soc_die);
  return DCMI_OK;
}

EXPORT int dcmi_get_device_pcie_info_v2(int card_id, int device_id, struct dcmi_pcie_info_all* p) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_pcie_info_v2", chip);
  if (rc != DCMI_OK) return rc;
  memset(p, 0, sizeof *p);
  p->venderid = 0x19e5; /* Huawei */
  p->deviceid = 0xd802;
  p->domain = g.chips[chip].domain;
  p->bdf_busid = g.chips[chip].bus;
  p->bdf_deviceid = g.chips[chip].dev;
  p->bdf_funcid = g.chips[chip].fn;
  return DCMI_OK;
}

#define SIMPLE(fn, type, f)                                            \
  EXPORT int fn(int card_id, int device_id, type* out) {               \
    int chip = chip_of(card_id, device_id);                            \
    int rc = enter(#fn, chip);                                         \
    if (rc != DCMI_OK) return rc;                                      \
    long long v = 0;                                                   \
    if ((rc = field(chip, f, &v)) != DCMI_OK) return rc;               \
    *out = (type)v;                                                    \
    return DCMI_OK;                                                    \
  }
SIMPLE(dcmi_get_device_health, unsigned int, F_HEALTH)
SIMPLE(dcmi_get_device_temperature, int, F_TEMPERATURE)
SIMPLE(dcmi_get_device_power_info, int, F_POWER)
SIMPLE(dcmi_get_device_voltage, unsigned int, F_VOLTAGE)
SIMPLE(dcmi_get_device_network_health, enum dcmi_rdfx_detect_result, F_NETWORK)

EXPORT int dcmi_get_device_utilization_rate(int card_id, int device_id, int input_type, unsigned int* rate) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_utilization_rate", chip);
  if (rc != DCMI_OK) return rc;
  if (input_type != 2) return DCMI_ERR_CODE_NOT_SUPPORT; /* only AI Core is scripted */
  long long v = 0;
  if ((rc = field(chip, F_UTIL, &v)) != DCMI_OK) return rc;
  *rate = (unsigned)v;
  return DCMI_OK;
}

EXPORT int dcmi_get_device_frequency(int card_id, int device_id, enum dcmi_freq_type type, unsigned int* freq) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_frequency", chip);
  if (rc != DCMI_OK) return rc;
  if (type != DCMI_FREQ_AICORE_CURRENT_) return DCMI_ERR_CODE_NOT_SUPPORT;
  long long v = 0;
  if ((rc = field(chip, F_AICORE_FREQ, &v)) != DCMI_OK) return rc;
  *freq = (unsigned)v;
  return DCMI_OK;
}

EXPORT int dcmi_get_device_hbm_info(int card_id, int device_id, struct dcmi_hbm_info* info) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_hbm_info", chip);
  if (rc != DCMI_OK) return rc;
  long long total = 0, used = 0;
  if ((rc = field(chip, F_HBM_TOTAL, &total)) != DCMI_OK) return rc;
  if ((rc = field(chip, F_HBM_USED, &used)) != DCMI_OK) return rc;
  memset(info, 0, sizeof *info);
  info->memory_size = (unsigned long long)total;
  info->memory_usage = (unsigned long long)used;
  info->freq = 1600;
  info->temp = 40;
  return DCMI_OK;
}

EXPORT int dcmi_get_device_memory_info_v3(int card_id, int device_id, struct dcmi_get_memory_info_stru* info) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_memory_info_v3", chip);
  if (rc != DCMI_OK) return rc;
  long long total = 0, avail = 0;
  if ((rc = field(chip, F_MEM_TOTAL, &total)) != DCMI_OK) return rc;
  if ((rc = field(chip, F_MEM_AVAILABLE, &avail)) != DCMI_OK) return rc;
  memset(info, 0, sizeof *info);
  info->memory_size = (unsigned long long)total;
  info->memory_available = (unsigned long long)avail;
  info->hugepagesize = 2048;
  return DCMI_OK;
}

EXPORT int dcmi_get_device_errorcode_v2(int card_id, int device_id, int* error_count, unsigned int* list,
                                        unsigned int list_len) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_errorcode_v2", chip);
  if (rc != DCMI_OK) return rc;
  if (error_count == NULL || list == NULL) return DCMI_ERR_CODE_INVALID_PARAMETER;
  const struct Rule* now = NULL;
  for (int i = 0; i < g.nrules; ++i) {
    const struct Rule* r = &g.rules[i];
    if (r->kind == 'c' && (r->chip < 0 || r->chip == chip) && step() >= r->from) now = r;
  }
  *error_count = 0;
  for (int k = 0; now != NULL && k < now->ncodes && (unsigned)k < list_len; ++k) {
    list[k] = now->codes[k];
    ++*error_count;
  }
  return DCMI_OK;
}

EXPORT int dcmi_get_device_resource_info(int card_id, int device_id, struct dcmi_proc_mem_info* procs, int* proc_num) {
  int chip = chip_of(card_id, device_id);
  int rc = enter("dcmi_get_device_resource_info", chip);
  if (rc != DCMI_OK) return rc;
  if (procs == NULL || proc_num == NULL) return DCMI_ERR_CODE_INVALID_PARAMETER;
  int n = 0;
  for (int i = 0; i < g.nrules; ++i) {
    const struct Rule* r = &g.rules[i];
    if (r->kind == 'p' && (r->chip < 0 || r->chip == chip) && step() >= r->from && step() <= r->to &&
        n < 32) {
      procs[n].proc_id = (int)r->a;
      procs[n].proc_mem_usage = (unsigned long)r->b;
      ++n;
    }
  }
  *proc_num = n;
  return DCMI_OK;
}
