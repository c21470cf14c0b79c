#pragma once

#include <cstdint>
#include <string_view>

namespace gridnode::drivers::mdadm {

// A device's activity as prometheus/procfs 0.8's MDStat() names it: the third word of its
// line ("active", "inactive"), replaced by the running sync operation if any.
enum class Activity : std::uint8_t { active, inactive, recovering, resyncing, checking, other };

// One md device of /proc/mdstat, as procfs 0.8 parses it (views into the text).
struct MdDevice {
  std::string_view name;  // "md0"
  Activity activity = Activity::other;
  std::int64_t disks_active = 0;
  std::int64_t disks_total = 0;   // required: the N of [N/M]; raid0 and linear: the members
  std::int64_t disks_failed = 0;  // members marked (F)
  std::int64_t disks_spare = 0;   // members marked (S)
  std::int64_t disks_down = 0;    // the '_' of [U_]
  std::int64_t blocks_total = 0;
  std::int64_t blocks_synced = 0;
  // Non-empty: the device's lines did not parse (why); only `name` is meaningful then.
  std::string_view error;
};

// Walks /proc/mdstat's text device by device without allocating. A device is a line that does
// not start with a space and is not the "Personalities" or "unused devices" line; its status
// line follows, then a bitmap line or not, then the sync line (recovery, resync, check), as
// in procfs 0.8's parseMDStat:
//   md6 : active raid1 sdb2[2](F) sdc[1](S) sda2[0]
//         195310144 blocks [2/1] [U_]
//         [=>...................]  recovery =  8.5% (16775552/195310144) finish=17.0min ...
// Where procfs fails the whole file on one bad device, next() reports that device with its
// `error` set and goes on with the next one. Unlike procfs, a sync line needs only its
// "(done/total)" part: the percentage, finish time and speed are not exported by
// node_exporter 1.5.0.
class MdstatReader {
 public:
  explicit MdstatReader(std::string_view text) : lines_{text} {}

  // The next device; false at the end of the text.
  bool next(MdDevice& out);

  // Lines split as Go's strings.Split(text, "\n") does: "a\n" is "a" and "".
  struct Lines {
    std::string_view rest;
    bool end = false;
    bool next(std::string_view& line);
  };

 private:
  Lines lines_;
};

}  // namespace gridnode::drivers::mdadm
