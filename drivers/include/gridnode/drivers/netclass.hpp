#pragma once

#include <memory>
#include <string>

#include "gridnode/drivers/driver.hpp"
#include "gridnode/platform/roots.hpp"

namespace gridnode::drivers {

// node_exporter 1.5.0's netclass collector (sysfs path), read under <sysfs>/class/net/<device>,
// every series labelled {device}:
//   node_network_up                 1 when operstate is "up", else 0 (also without operstate)
//   node_network_info{address,broadcast,device,duplex,ifalias,operstate}  always 1
//   node_network_<property>         "Network device property: <property>", one per file that
//                                   exists and reads: address_assign_type, carrier, device_id
//                                   (dev_id), dormant, flags, iface_id (ifindex), iface_link
//                                   (iflink), iface_link_mode (link_mode), mtu_bytes (mtu),
//                                   name_assign_type, net_dev_group (netdev_group),
//                                   transmit_queue_length (tx_queue_len), protocol_type (type),
//                                   speed_bytes (speed in Mb/s, scale {125000,0} -> bytes/s; the
//                                   kernel's -1 for "unknown" is kept, as 1.5 keeps it)
//   node_network_carrier_changes_total, _carrier_up_changes_total, _carrier_down_changes_total
//                                   counters (carrier_changes, carrier_up_count, _down_count)
// Integers are read as Go's ParseInt(s, 0, 64) reads them ("0x1003" flags is 4099). A file the
// kernel refuses when the device is discovered (EINVAL: speed and duplex of a link that is down;
// EOPNOTSUPP, EACCES, ENOENT) is left out, as node_exporter leaves it out. When operstate
// changes, the device is discovered again at the next sweep, so the info labels and the files
// a link only has while it is up follow it.
struct NetclassOptions {
  platform::Roots roots;
  bool keep_files_open = true;  // as ThermalOptions::keep_files_open
  // node_exporter's --collector.netclass.ignored-devices (an ECMAScript regex searched in the
  // name, as Go's MatchString does); its default "^$" ignores nothing.
  std::string ignored_devices = "^$";
  // node_exporter's --collector.netclass.ignore-invalid-speed: leave out a negative speed.
  bool ignore_invalid_speed = false;
};

// Never fails; the first sweep() says no_such_file_or_directory when <sysfs>/class/net is
// absent, invalid_argument when ignored_devices is not a regex.
std::unique_ptr<Driver> make_netclass_driver(NetclassOptions options);

}  // namespace gridnode::drivers
