#pragma once

// The part of Huawei Ascend's DCMI C ABI (libdcmi.so) the ascend driver calls, declared after
// the public dcmi_interface_api.h that Ascend's MindCluster ships
// (github.com/Ascend/mind-cluster, component/ascend-common/devmanager/dcmi/dcmi_interface_api.h,
// Apache-2.0; the same header as Ascend/ascend-npu-exporter's devmanager/dcmi/). Types, struct
// layouts and values are the header's; the library is never linked, so nothing here is
// checked by a linker: the static_asserts pin the layouts (LP64: x86_64 and aarch64).
// Error codes are the header's DCMI_ERR_CODE_* (DCMI_ERROR_CODE_BASE -8000).

#include <cstdint>

namespace gridnode::drivers::ascend {

constexpr int DCMI_OK = 0;
constexpr int DCMI_ERROR_CODE_BASE = -8000;
constexpr int DCMI_ERR_CODE_INVALID_PARAMETER = DCMI_ERROR_CODE_BASE - 1;
constexpr int DCMI_ERR_CODE_OPER_NOT_PERMITTED = DCMI_ERROR_CODE_BASE - 2;
constexpr int DCMI_ERR_CODE_MEM_OPERATE_FAIL = DCMI_ERROR_CODE_BASE - 3;
constexpr int DCMI_ERR_CODE_SECURE_FUN_FAIL = DCMI_ERROR_CODE_BASE - 4;
constexpr int DCMI_ERR_CODE_INNER_ERR = DCMI_ERROR_CODE_BASE - 5;
constexpr int DCMI_ERR_CODE_TIME_OUT = DCMI_ERROR_CODE_BASE - 6;
constexpr int DCMI_ERR_CODE_INVALID_DEVICE_ID = DCMI_ERROR_CODE_BASE - 7;
constexpr int DCMI_ERR_CODE_DEVICE_NOT_EXIST = DCMI_ERROR_CODE_BASE - 8;
constexpr int DCMI_ERR_CODE_IOCTL_FAIL = DCMI_ERROR_CODE_BASE - 9;
constexpr int DCMI_ERR_CODE_SEND_MSG_FAIL = DCMI_ERROR_CODE_BASE - 10;
constexpr int DCMI_ERR_CODE_RECV_MSG_FAIL = DCMI_ERROR_CODE_BASE - 11;
constexpr int DCMI_ERR_CODE_NOT_REDAY = DCMI_ERROR_CODE_BASE - 12;  // sic
constexpr int DCMI_ERR_CODE_NOT_SUPPORT_IN_CONTAINER = DCMI_ERROR_CODE_BASE - 13;
constexpr int DCMI_ERR_CODE_FILE_OPERATE_FAIL = DCMI_ERROR_CODE_BASE - 14;
constexpr int DCMI_ERR_CODE_RESET_FAIL = DCMI_ERROR_CODE_BASE - 15;
constexpr int DCMI_ERR_CODE_ABORT_OPERATE = DCMI_ERROR_CODE_BASE - 16;
constexpr int DCMI_ERR_CODE_IS_UPGRADING = DCMI_ERROR_CODE_BASE - 17;
constexpr int DCMI_ERR_CODE_RESOURCE_OCCUPIED = DCMI_ERROR_CODE_BASE - 20;
constexpr int DCMI_ERR_CODE_PARTITION_NOT_RIGHT = DCMI_ERROR_CODE_BASE - 22;
constexpr int DCMI_ERR_CODE_NOT_SUPPORT = DCMI_ERROR_CODE_BASE - 255;

constexpr int MAX_CHIP_NAME_LEN = 32;
constexpr int DIE_ID_COUNT = 5;
constexpr int MAX_CARD_NUM = 64;
// What npu-exporter's devmanager asks for: at most 128 error codes and 32 processes a chip.
constexpr unsigned kMaxErrorCodes = 128;
constexpr int kMaxProcesses = 32;

struct dcmi_chip_info {
  unsigned char chip_type[MAX_CHIP_NAME_LEN];
  unsigned char chip_name[MAX_CHIP_NAME_LEN];
  unsigned char chip_ver[MAX_CHIP_NAME_LEN];
  unsigned int aicore_cnt;
};
struct dcmi_pcie_info_all {
  unsigned int venderid;
  unsigned int subvenderid;
  unsigned int deviceid;
  unsigned int subdeviceid;
  int domain;
  unsigned int bdf_busid;
  unsigned int bdf_deviceid;
  unsigned int bdf_funcid;
  unsigned char reserve[32];
};
struct dcmi_die_id {
  unsigned int soc_die[DIE_ID_COUNT];
};
struct dcmi_hbm_info {
  unsigned long long memory_size;  // MB
  unsigned int freq;
  unsigned long long memory_usage;  // MB
  int temp;
  unsigned int bandwith_util_rate;  // sic
};
struct dcmi_get_memory_info_stru {
  unsigned long long memory_size;       // MB
  unsigned long long memory_available;  // MB: free + hugepages_free * hugepagesize
  unsigned int freq;
  unsigned long hugepagesize;  // KB
  unsigned long hugepages_total;
  unsigned long hugepages_free;
  unsigned int utiliza;
  unsigned char reserve[60];
};
struct dcmi_proc_mem_info {
  int proc_id;
  unsigned long proc_mem_usage;  // bytes
};
enum dcmi_die_type { NDIE, VDIE };
enum dcmi_freq_type {
  DCMI_FREQ_DDR = 1,
  DCMI_FREQ_CTRLCPU = 2,
  DCMI_FREQ_HBM = 6,
  DCMI_FREQ_AICORE_CURRENT_ = 7,
  DCMI_FREQ_AICORE_MAX = 9,
  DCMI_FREQ_VECTORCORE_CURRENT = 12
};
enum dcmi_rdfx_detect_result {
  DCMI_RDFX_DETECT_OK = 0,
  DCMI_RDFX_DETECT_SOCK_FAIL = 1,
  DCMI_RDFX_DETECT_RECV_TIMEOUT = 2,
  DCMI_RDFX_DETECT_UNREACH = 3,
  DCMI_RDFX_DETECT_TIME_EXCEEDED = 4,
  DCMI_RDFX_DETECT_FAULT = 5,
  DCMI_RDFX_DETECT_INIT = 6,
  DCMI_RDFX_DETECT_THREAD_ERR = 7,
  DCMI_RDFX_DETECT_IP_SET = 8,
  DCMI_RDFX_DETECT_MAX = 0xFF
};
constexpr int DCMI_UTILIZATION_RATE_AICORE = 2;

static_assert(sizeof(dcmi_chip_info) == 100);
static_assert(sizeof(dcmi_pcie_info_all) == 64);
static_assert(sizeof(dcmi_die_id) == 20);
static_assert(sizeof(dcmi_hbm_info) == 32);
static_assert(sizeof(dcmi_get_memory_info_stru) == 112);
static_assert(sizeof(dcmi_proc_mem_info) == 16);
static_assert(sizeof(dcmi_rdfx_detect_result) == 4 && sizeof(dcmi_freq_type) == 4);

extern "C" {
using dcmi_init_fn = int (*)();
using dcmi_get_card_list_fn = int (*)(int* card_num, int* card_list, int list_len);
using dcmi_get_device_num_in_card_fn = int (*)(int card_id, int* device_num);
using dcmi_get_device_logic_id_fn = int (*)(int* device_logic_id, int card_id, int device_id);
using dcmi_get_device_phyid_from_logicid_fn = int (*)(unsigned int logicid, unsigned int* phyid);
using dcmi_get_device_chip_info_fn = int (*)(int, int, dcmi_chip_info*);
using dcmi_get_device_pcie_info_v2_fn = int (*)(int, int, dcmi_pcie_info_all*);
using dcmi_get_device_die_v2_fn = int (*)(int, int, dcmi_die_type, dcmi_die_id*);
using dcmi_get_device_uint_fn = int (*)(int, int, unsigned int*);  // health, voltage
using dcmi_get_device_int_fn = int (*)(int, int, int*);            // temperature, power
using dcmi_get_device_errorcode_v2_fn = int (*)(int, int, int* error_count,
                                                unsigned int* error_code_list,
                                                unsigned int list_len);
using dcmi_get_device_utilization_rate_fn = int (*)(int, int, int input_type, unsigned int*);
using dcmi_get_device_frequency_fn = int (*)(int, int, dcmi_freq_type, unsigned int*);
using dcmi_get_device_hbm_info_fn = int (*)(int, int, dcmi_hbm_info*);
using dcmi_get_device_memory_info_v3_fn = int (*)(int, int, dcmi_get_memory_info_stru*);
using dcmi_get_device_network_health_fn = int (*)(int, int, dcmi_rdfx_detect_result*);
using dcmi_get_device_resource_info_fn = int (*)(int, int, dcmi_proc_mem_info*, int* proc_num);
}

}  // namespace gridnode::drivers::ascend
