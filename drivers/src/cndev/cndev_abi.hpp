#pragma once

// The part of Cambricon's CNDev C ABI (libcndev.so) the cndev driver calls, declared after the
// public cndev.h that Cambricon's mlu-exporter ships (github.com/Cambricon/mlu-exporter,
// pkg/cndev/include/cndev.h, Apache-2.0). Versioned structs carry `version` (IN) first: the
// driver fills in CNDEV_VERSION_6, the version of that header. The library is never linked;
// the static_asserts pin the layouts (LP64).

#include <cstdint>

namespace gridnode::drivers::cndev {

enum cndevRet_t : int {
  CNDEV_SUCCESS = 0,
  CNDEV_ERROR_NO_DRIVER = 1,
  CNDEV_ERROR_LOW_DRIVER_VERSION = 2,
  CNDEV_ERROR_UNSUPPORTED_API_VERSION = 3,
  CNDEV_ERROR_UNINITIALIZED = 4,
  CNDEV_ERROR_INVALID_ARGUMENT = 5,
  CNDEV_ERROR_INVALID_DEVICE_ID = 6,
  CNDEV_ERROR_UNKNOWN = 7,
  CNDEV_ERROR_MALLOC = 8,
  CNDEV_ERROR_INSUFFICIENT_SPACE = 9,
  CNDEV_ERROR_NOT_SUPPORTED = 10,
  CNDEV_ERROR_INVALID_LINK = 11,
  CNDEV_ERROR_NO_DEVICES = 12,
  CNDEV_ERROR_NO_PERMISSION = 13,
  CNDEV_ERROR_NOT_FOUND = 14,
  CNDEV_ERROR_IN_USE = 15,
  CNDEV_ERROR_DUPLICATE = 16,
  CNDEV_ERROR_TIMEOUT = 17,
  CNDEV_ERROR_IN_PROBLEM = 18,
};
static_assert(sizeof(cndevRet_t) == 4);

constexpr std::int32_t CNDEV_VERSION_6 = 6;
constexpr int CNDEV_UUID_SIZE = 37;
constexpr std::uint32_t kMaxProcesses = 64;

using cndevDevice_t = std::int32_t;

struct cndevCardInfo_t {
  std::int32_t version;
  std::uint32_t number;
};
struct cndevTemperatureInfo_t {
  std::int32_t version;
  std::int32_t board;
  std::int32_t cluster[20];
  std::int32_t memoryDie[8];
  std::int32_t chip;
  std::int32_t airInlet;
  std::int32_t airOutlet;
  std::int32_t memory;
  std::int32_t videoInput;
  std::int32_t cpu;
  std::int32_t isp;
};
struct cndevMemoryInfoV2_t {
  std::int64_t physicalMemoryTotal;  // MB
  std::int64_t physicalMemoryUsed;   // MB
  std::int64_t reservedMemory;
  std::int64_t virtualMemoryTotal;
  std::int64_t virtualMemoryUsed;
  std::uint64_t globalMemory;
  std::uint64_t reserved[16];
};
struct cndevUtilizationInfo_t {
  std::int32_t version;
  std::int32_t averageCoreUtilization;
  std::int32_t coreUtilization[80];
};
struct cndevUUID_t {
  std::int32_t version;
  std::uint8_t uuid[CNDEV_UUID_SIZE];
  std::uint64_t ncsUUID64;
};
struct cndevCardSN_t {
  std::int32_t version;
  std::uint64_t sn;
  std::uint64_t motherBoardSn;
};
struct cndevProcessInfo_t {
  std::int32_t version;
  std::uint32_t pid;
  std::uint64_t physicalMemoryUsed;  // KiB
  std::uint64_t virtualMemoryUsed;   // KiB
};
enum cndevHealthStateEnum_t : int {
  CNDEV_HEALTH_STATE_DEVICE_IN_PROBLEM = 0,
  CNDEV_HEALTH_STATE_DEVICE_GOOD = 1,
};
enum cndevDriverHealthStateEnum_t : int { CNDEV_HEALTH_STATE_DRIVER_RUNNING = 4 };
struct cndevCardHealthState_t {
  std::int32_t version;
  std::int32_t health;
  cndevHealthStateEnum_t deviceState;
  cndevDriverHealthStateEnum_t driverState;
};
struct cndevDevicePowerInfo_t {
  std::int32_t usage;  // W
  std::int32_t cap;    // W
  std::int32_t machine;
  std::int32_t tdp;
  std::int32_t maxPower;
  std::int32_t reserved[16];
};

static_assert(sizeof(cndevCardInfo_t) == 8);
static_assert(sizeof(cndevTemperatureInfo_t) == 4 * 37);
static_assert(sizeof(cndevMemoryInfoV2_t) == 8 * 22);
static_assert(sizeof(cndevUtilizationInfo_t) == 4 * 82);
static_assert(sizeof(cndevUUID_t) == 56);
static_assert(sizeof(cndevCardSN_t) == 24);
static_assert(sizeof(cndevProcessInfo_t) == 24);
static_assert(sizeof(cndevCardHealthState_t) == 16);
static_assert(sizeof(cndevDevicePowerInfo_t) == 4 * 21);

extern "C" {
using cndevInit_fn = cndevRet_t (*)(std::int32_t reserved);
using cndevRelease_fn = cndevRet_t (*)();
using cndevGetDeviceCount_fn = cndevRet_t (*)(cndevCardInfo_t*);
using cndevGetDeviceHandleByIndex_fn = cndevRet_t (*)(std::int32_t index, cndevDevice_t* handle);
using cndevGetTemperatureInfo_fn = cndevRet_t (*)(cndevTemperatureInfo_t*, cndevDevice_t);
using cndevGetMemoryUsageV2_fn = cndevRet_t (*)(cndevMemoryInfoV2_t*, cndevDevice_t);
using cndevGetDeviceUtilizationInfo_fn = cndevRet_t (*)(cndevUtilizationInfo_t*, cndevDevice_t);
using cndevGetUUID_fn = cndevRet_t (*)(cndevUUID_t*, cndevDevice_t);
using cndevGetCardSN_fn = cndevRet_t (*)(cndevCardSN_t*, cndevDevice_t);
using cndevGetCardNameStringByDevId_fn = const char* (*)(cndevDevice_t);
using cndevGetProcessInfo_fn = cndevRet_t (*)(std::uint32_t* infoCount, cndevProcessInfo_t*,
                                              cndevDevice_t);
using cndevGetCardHealthState_fn = cndevRet_t (*)(cndevCardHealthState_t*, cndevDevice_t);
using cndevGetDevicePowerInfo_fn = cndevRet_t (*)(cndevDevicePowerInfo_t*, cndevDevice_t);
}

}  // namespace gridnode::drivers::cndev
