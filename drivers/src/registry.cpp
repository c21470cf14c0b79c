#include "gridnode/drivers/registry.hpp"

#include <algorithm>
#include <array>
#include <span>

#include "gridnode/drivers/amdgpu.hpp"
#include "gridnode/drivers/ascend.hpp"
#include "gridnode/drivers/cndev.hpp"
#include "gridnode/drivers/cpufreq.hpp"
#include "gridnode/drivers/edac.hpp"
#include "gridnode/drivers/hwmon.hpp"
#include "gridnode/drivers/infiniband.hpp"
#include "gridnode/drivers/ipmi.hpp"
#include "gridnode/drivers/mdadm.hpp"
#include "gridnode/drivers/netclass.hpp"
#include "gridnode/drivers/nvme.hpp"
#include "gridnode/drivers/nvml.hpp"
#include "gridnode/drivers/pcie.hpp"
#include "gridnode/drivers/powercap.hpp"
#include "gridnode/drivers/pressure.hpp"
#include "gridnode/drivers/procfs.hpp"
#include "gridnode/drivers/thermal.hpp"
#include "gridnode/drivers/timex.hpp"
#include "ascend/ascend_options.hpp"
#include "cndev/cndev_options.hpp"
#include "filesystem/filesystem_options.hpp"
#include "ipmi/ipmi_options.hpp"
#include "netclass/netclass_options.hpp"
#include "nvml/nvml_options.hpp"
#include "textfile/textfile_options.hpp"

namespace gridnode::drivers {
namespace {

using platform::Result;
using Made = Result<std::unique_ptr<Driver>>;

// One driver: its name, and how it is built from the context and its section of agent.toml.
// `check` is null for a driver that reads no section ([hwmon] is then an unknown section);
// `flags` are the command-line flags that set keys of that section.
struct Entry {
  std::string_view name;
  Made (*make)(const DriverContext&, const OptionSection&);
  Result<void> (*check)(const OptionSection&) = nullptr;
  std::span<const DriverFlag> flags = {};
};

// A driver that takes only the roots (and so reads no section).
template <class Options, std::unique_ptr<Driver> (*Make)(Options)>
Made from_roots(const DriverContext& c, const OptionSection&) {
  Options o;
  o.roots = c.roots;
  return Make(std::move(o));
}

// timex reads neither a tree nor a section: one system call.
Made make_timex(const DriverContext&, const OptionSection&) { return make_timex_driver(); }

// A driver whose section `parse` turns into its options; checking is parsing with a default
// context.
template <class Options, Result<Options> (*Parse)(const DriverContext&, const OptionSection&),
          std::unique_ptr<Driver> (*Make)(Options)>
struct Sectioned {
  static Made make(const DriverContext& c, const OptionSection& s) {
    auto o = Parse(c, s);
    if (!o) {
      return tl::unexpected(o.error());
    }
    return Make(std::move(*o));
  }
  static Result<void> check(const OptionSection& s) {
    auto o = Parse(DriverContext{}, s);
    if (!o) {
      return tl::unexpected(o.error());
    }
    return {};
  }
};

constexpr std::array kNvmlFlags{
    DriverFlag{"--nvml-library", "nvml", "library",
               "The NVML library to dlopen (default libnvidia-ml.so.1, found by the loader)"},
};
using Nvml = Sectioned<NvmlOptions, nvml::options, make_nvml_driver>;
constexpr std::array kAscendFlags{
    DriverFlag{"--ascend-library", "ascend", "library",
               "The Ascend DCMI library to dlopen (default libdcmi.so, found by the loader)"},
};
using Ascend = Sectioned<AscendOptions, ascend::options, make_ascend_driver>;
constexpr std::array kCndevFlags{
    DriverFlag{"--cndev-library", "cndev", "library",
               "The Cambricon CNDev library to dlopen (default libcndev.so, found by the loader)"},
};
using Cndev = Sectioned<CndevOptions, cndev::options, make_cndev_driver>;
using Netclass = Sectioned<NetclassOptions, netclass::options, make_netclass_driver>;
// node_exporter's flags, setting the same keys of [filesystem] and [textfile].
constexpr std::array kFilesystemFlags{
    DriverFlag{"--collector.filesystem.mount-points-exclude", "filesystem", "mount_points_exclude",
               "Regexp of mount points to exclude for filesystem collector."},
    DriverFlag{"--collector.filesystem.fs-types-exclude", "filesystem", "fs_types_exclude",
               "Regexp of filesystem types to exclude for filesystem collector."},
};
constexpr std::array kTextfileFlags{
    DriverFlag{"--collector.textfile.directory", "textfile", "directory",
               "Directory to read text files with metrics from."},
};
using Ipmi = Sectioned<IpmiOptions, ipmi_options, make_ipmi_driver>;

// An explicit table, not self-registration from static constructors: static libraries drop
// those, and their order is unspecified. A new driver is one line here.
constexpr std::array kDrivers{
    Entry{"procfs", from_roots<ProcfsOptions, make_procfs_driver>},
    Entry{"hwmon", from_roots<HwmonOptions, make_hwmon_driver>},
    Entry{"thermal", from_roots<ThermalOptions, make_thermal_driver>},
    Entry{"powercap", from_roots<PowercapOptions, make_powercap_driver>},
    Entry{"nvml", Nvml::make, Nvml::check, kNvmlFlags},
    Entry{"amdgpu", from_roots<AmdgpuOptions, make_amdgpu_driver>},
    Entry{"ascend", Ascend::make, Ascend::check, kAscendFlags},
    Entry{"cndev", Cndev::make, Cndev::check, kCndevFlags},
    Entry{"edac", from_roots<EdacOptions, make_edac_driver>},
    Entry{"nvme", from_roots<NvmeOptions, make_nvme_driver>},
    Entry{"mdadm", from_roots<MdadmOptions, make_mdadm_driver>},
    Entry{"infiniband", from_roots<InfinibandOptions, make_infiniband_driver>},
    Entry{"pcie", from_roots<PcieOptions, make_pcie_driver>},
    Entry{"netclass", Netclass::make, Netclass::check},
    Entry{"pressure", from_roots<PressureOptions, make_pressure_driver>},
    Entry{"cpufreq", from_roots<CpufreqOptions, make_cpufreq_driver>},
    Entry{"timex", make_timex},
    Entry{"filesystem", filesystem::make, filesystem::check, kFilesystemFlags},
    Entry{"textfile", textfile::make, textfile::check, kTextfileFlags},
    Entry{"ipmi", Ipmi::make, Ipmi::check},
};

const Entry* find(std::string_view name) {
  auto it = std::find_if(kDrivers.begin(), kDrivers.end(),
                         [&](const Entry& e) { return e.name == name; });
  return it == kDrivers.end() ? nullptr : &*it;
}

Result<void> known(const std::vector<std::string>& names, std::string_view what) {
  for (const auto& n : names) {
    if (find(n) == nullptr) {
      return platform::fail(std::errc::invalid_argument,
                            std::string(what) + "unknown driver \"" + n + "\"");
    }
  }
  return {};
}

}  // namespace

std::vector<std::string_view> driver_names() {
  std::vector<std::string_view> names;
  for (const auto& e : kDrivers) {
    names.push_back(e.name);
  }
  return names;
}

bool has_section(std::string_view name) {
  const Entry* e = find(name);
  return e != nullptr && e->check != nullptr;
}

Result<void> check_section(const OptionSection& section) {
  const Entry* e = find(section.name);
  if (e == nullptr || e->check == nullptr) {
    return platform::fail(std::errc::invalid_argument,
                          "no driver reads a section [" + section.name + "]");
  }
  return e->check(section);
}

std::vector<DriverFlag> driver_flags() {
  std::vector<DriverFlag> flags;
  for (const auto& e : kDrivers) {
    flags.insert(flags.end(), e.flags.begin(), e.flags.end());
  }
  return flags;
}

Result<std::vector<std::unique_ptr<Driver>>> make_drivers(
    const DriverContext& context, const std::vector<std::string>& names,
    const std::vector<OptionSection>& sections) {
  if (auto ok = known(names, ""); !ok) {
    return tl::unexpected(ok.error());
  }
  std::vector<std::unique_ptr<Driver>> drivers;
  for (const auto& e : kDrivers) {
    if (!names.empty() && std::find(names.begin(), names.end(), e.name) == names.end()) {
      continue;
    }
    auto s = std::find_if(sections.begin(), sections.end(),
                          [&](const OptionSection& o) { return o.name == e.name; });
    OptionSection defaults{std::string(e.name), {}};
    auto made = e.make(context, s == sections.end() ? defaults : *s);
    if (!made) {
      return tl::unexpected(made.error());
    }
    drivers.push_back(std::move(*made));
  }
  return drivers;
}

Result<std::vector<std::string>> select_drivers(const std::vector<std::string>& configured,
                                                const std::vector<std::string>& enabled,
                                                const std::vector<std::string>& disabled) {
  if (auto ok = known(enabled, "--collector.NAME: "); !ok) {
    return tl::unexpected(ok.error());
  }
  if (auto ok = known(disabled, "--no-collector.NAME: "); !ok) {
    return tl::unexpected(ok.error());
  }
  if (enabled.empty() && disabled.empty()) {
    return configured;
  }
  auto listed = [](const std::vector<std::string>& v, std::string_view n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  std::vector<std::string> out;
  for (const auto& e : kDrivers) {
    const bool on = configured.empty() || listed(configured, e.name) || listed(enabled, e.name);
    if (on && !listed(disabled, e.name)) {
      out.emplace_back(e.name);
    }
  }
  if (out.empty()) {
    return platform::fail(std::errc::invalid_argument,
                          "--no-collector leaves no driver to run");
  }
  return out;
}

}  // namespace gridnode::drivers
