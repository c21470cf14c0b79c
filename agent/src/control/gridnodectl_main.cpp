// gridnodectl: the technician's view of the local gridnode agent.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gridnode/agent/control_client.hpp"
#include "gridnode/agent/policy.hpp"
#include "gridnode/agent/policy_bundle.hpp"
#include "gridnode/platform/files.hpp"

namespace {

using nlohmann::json;

// Columns padded to their widest cell (UTF-8 aware enough for "°C").
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(const std::string& indent) const {
    std::vector<std::size_t> width;
    for (const auto& r : rows_) {
      width.resize(std::max(width.size(), r.size()));
      for (std::size_t i = 0; i < r.size(); ++i) {
        width[i] = std::max(width[i], display_width(r[i]));
      }
    }
    for (const auto& r : rows_) {
      std::string line = indent;
      for (std::size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) {
          line += std::string(width[i] - display_width(r[i]) + 2, ' ');
        }
      }
      while (!line.empty() && line.back() == ' ') {
        line.pop_back();
      }
      std::printf("%s\n", line.c_str());
    }
  }

 private:
  static std::size_t display_width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) {
      n += (c & 0xC0) != 0x80;  // count code points, not bytes
    }
    return n;
  }
  std::vector<std::vector<std::string>> rows_;
};

std::string fmt_number(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s(buf);
    while (s.back() == '0') {
      s.pop_back();
    }
    return s;
  }
  return buf;
}

std::string with_unit(const json& row, const char* key) {
  if (!row.contains(key)) {
    return "";
  }
  std::string unit = row.value("unit", "");
  std::string s = fmt_number(row[key].get<double>());
  return unit.empty() ? s : s + " " + unit;
}

std::string fmt_seconds(double s) {
  char buf[64];
  if (s < 0.001) {
    std::snprintf(buf, sizeof buf, "%.0fµs", s * 1e6);
  } else if (s < 1) {
    std::snprintf(buf, sizeof buf, "%.1fms", s * 1e3);
  } else if (s < 120) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 7200) {
    std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
  }
  return buf;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "gridnodectl: %s\n", message.c_str());
  return 1;
}

// Sends one request; prints the agent's or the transport's error in one line.
bool ask(const std::string& socket, const json& request, json& answer) {
  auto r = gridnode::agent::control_request(socket, request);
  if (!r) {
    fail(r.error().message());
    return false;
  }
  if (!r->value("ok", false)) {
    fail("gridnoded refused: " + r->value("error", std::string("no reason given")));
    return false;
  }
  answer = std::move(*r);
  return true;
}

int cmd_status(const std::string& socket, bool as_json) {
  json a;
  if (!ask(socket, {{"cmd", "status"}}, a)) {
    return 1;
  }
  const json& s = a["status"];
  if (as_json) {
    std::printf("%s\n", s.dump(2).c_str());
    return 0;
  }
  std::printf("gridnoded %s, up %s, sampling every %s, config: %s\n",
              s.value("version", "?").c_str(), fmt_seconds(s.value("uptime_seconds", 0.0)).c_str(),
              fmt_seconds(s.value("interval_seconds", 0.0)).c_str(),
              s.value("config", "?").c_str());
  if (s.contains("last_sweep_age_seconds")) {
    std::printf("last sweep %s ago, %llu sweeps\n",
                fmt_seconds(s["last_sweep_age_seconds"].get<double>()).c_str(),
                static_cast<unsigned long long>(s.value("rounds", 0ull)));
  } else {
    std::printf("no sweep finished yet\n");
  }
  if (s.contains("report")) {
    const json& r = s["report"];
    if (!r.value("enrolled", true)) {
      std::printf("reports: not signed, this node is not enrolled (gridnoded enroll)\n");
    } else {
      std::printf("reports: node %s, seq %llu, last %llu bytes for %llu samples%s\n",
                  r.value("node", "?").c_str(),
                  static_cast<unsigned long long>(r.value("seq", 0ull)),
                  static_cast<unsigned long long>(r.value("last_bytes", 0ull)),
                  static_cast<unsigned long long>(r.value("last_samples", 0ull)),
                  r.contains("error") ? (", error: " + r["error"].get<std::string>()).c_str() : "");
    }
  }
  if (s.contains("uplink")) {
    const json& u = s["uplink"];
    if (!u.value("configured", true)) {
      std::printf("uplink: none configured, reports stay in the spool\n");
    } else {
      std::string to = u.value("connected_to", "");
      std::printf("uplink: %s%s, acked up to %llu%s%s\n", u.value("state", "?").c_str(),
                  to.empty() ? "" : (" to " + to).c_str(),
                  static_cast<unsigned long long>(u.value("acked_seq", 0ull)),
                  u.contains("last_ack_age_seconds")
                      ? (", last ack " + fmt_seconds(u["last_ack_age_seconds"].get<double>()) + " ago").c_str()
                      : "",
                  u.contains("error") ? (", " + u["error"].get<std::string>()).c_str() : "");
    }
  }
  if (s.contains("spool")) {
    const json& sp = s["spool"];
    std::printf("spool: %llu reports not yet acknowledged (%llu bytes), %llu bytes on disk, %llu gaps\n",
                static_cast<unsigned long long>(sp.value("unacked", 0ull)),
                static_cast<unsigned long long>(sp.value("unacked_bytes", 0ull)),
                static_cast<unsigned long long>(sp.value("bytes", 0ull)),
                static_cast<unsigned long long>(sp.value("gaps_created", 0ull)));
  }
  Table t({"DRIVER", "STATE", "SAMPLES", "ERRORS", "SWEEP", "NOTE"});
  for (const auto& d : s["drivers"]) {
    std::string note = d.value("error", "");
    std::string state = d.value("state", "?");
    if (state == "absent" && !note.empty()) {
      note = "found nothing: " + note;
    }
    t.add({d.value("name", "?"), state, std::to_string(d.value("samples", 0)),
           std::to_string(d.value("errors_total", 0ull)),
           fmt_seconds(d.value("last_sweep_seconds", 0.0)), note});
  }
  t.print("");
  return 0;
}

int cmd_sensors(const std::string& socket, bool as_json, const std::string& chip,
                const std::string& type) {
  json a;
  if (!ask(socket, {{"cmd", "sensors"}}, a)) {
    return 1;
  }
  json rows = json::array();
  for (const auto& r : a["sensors"]) {
    std::string c = r.value("chip", "");
    std::string cn = r.value("chip_name", "");
    if (!chip.empty() && c.find(chip) == std::string::npos && cn.find(chip) == std::string::npos) {
      continue;
    }
    if (!type.empty() && r.value("type", "") != type) {
      continue;
    }
    rows.push_back(r);
  }
  if (as_json) {
    std::printf("%s\n", rows.dump(2).c_str());
    return 0;
  }
  if (rows.empty()) {
    std::printf("no sensors%s (gridnodectl status shows which sources found nothing)\n",
                chip.empty() && type.empty() ? "" : " match the filter");
    return 0;
  }
  std::map<std::string, std::vector<const json*>> by_chip;
  std::vector<std::string> order;
  for (const auto& r : rows) {
    std::string c = r.value("chip", "");
    if (!by_chip.contains(c)) {
      order.push_back(c);
    }
    by_chip[c].push_back(&r);
  }
  for (const auto& c : order) {
    const json& first = *by_chip[c].front();
    std::string title = c;
    if (first.contains("chip_name")) {
      title += " (" + first["chip_name"].get<std::string>() + ")";
    }
    std::printf("%s\n", title.c_str());
    Table t({"SENSOR", "TYPE", "LABEL", "VALUE", "MIN", "MAX", "CRIT", "ALARM"});
    for (const json* r : by_chip[c]) {
      std::string alarm;
      if (r->contains("state")) {
        // A BMC sensor's state as FreeIPMI interprets it (ipmi_exporter's 0/1/2).
        double st = (*r)["state"].get<double>();
        alarm = st == 0 ? "ok" : st == 1 ? "WARNING" : "CRITICAL";
      } else if (r->contains("alarm")) {
        alarm = (*r)["alarm"].get<double>() != 0 ? "ALARM" : "ok";
      }
      t.add({r->value("sensor", ""), r->value("type", ""), r->value("label", ""),
             with_unit(*r, "value"), with_unit(*r, "min"), with_unit(*r, "max"),
             with_unit(*r, "crit"), alarm});
    }
    t.print("  ");
    std::printf("\n");
  }
  return 0;
}

// One row per accelerator: what a technician checks first on a GPU node.
int cmd_gpus(const std::string& socket, bool as_json) {
  json a;
  if (!ask(socket, {{"cmd", "gpus"}}, a)) {
    return 1;
  }
  const json& gpus = a["gpus"];
  if (as_json) {
    std::printf("%s\n", gpus.dump(2).c_str());
    return 0;
  }
  if (gpus.empty()) {
    std::printf(
        "no accelerators (gridnodectl status shows whether nvml, amdgpu, ascend and cndev found "
        "any)\n");
    return 0;
  }
  auto num = [](const json& g, const char* key, const char* unit) -> std::string {
    return g.contains(key) ? fmt_number(g[key].get<double>()) + unit : "-";
  };
  Table t({"GPU", "MODEL", "TEMP", "POWER/LIMIT", "UTIL", "MEMORY USED/TOTAL", "PROCS", "HEALTH",
           "BUS"});
  for (const auto& g : gpus) {
    const std::string driver = g.value("driver", "");
    std::string index = driver == "amdgpu"   ? "amd"
                        : driver == "ascend" ? "npu"
                        : driver == "cndev"  ? "mlu"
                                             : "";
    index += std::to_string(g.value("index", 0));
    std::string power = num(g, "power_watts", "");
    power += g.contains("power_limit_watts") ? "/" + num(g, "power_limit_watts", " W") : " W";
    if (!g.contains("power_watts")) {
      power = "-";
    }
    std::string mem = num(g, "memory_used_mib", "") + "/" + num(g, "memory_total_mib", " MiB");
    std::string health = g.value("health", "?");
    if (g.contains("xid") && g["xid"].get<double>() != 0) {
      health += ", last XID " + fmt_number(g["xid"].get<double>());
    }
    if (g.contains("error_code") && g["error_code"].get<double>() != 0) {
      char code[16];
      std::snprintf(code, sizeof code, "0x%08llX",
                    static_cast<unsigned long long>(g["error_code"].get<double>()));
      health += std::string(", error code ") + code;
    }
    t.add({index, g.value("model", ""), num(g, "temperature_celsius", " °C"), power,
           num(g, "utilization_percent", " %"), mem, std::to_string(g["processes"].size()),
           health, g.value("pci_bus_id", "")});
  }
  t.print("");
  bool any = false;
  for (const auto& g : gpus) {
    for (const auto& p : g["processes"]) {
      if (!any) {
        std::printf("\n");
      }
      any = true;
      std::printf("gpu %lld: pid %lld uid %s %s MiB cgroup %s\n",
                  static_cast<long long>(g.value("index", 0)),
                  static_cast<long long>(p.value("pid", 0)), p.value("uid", "?").c_str(),
                  fmt_number(p.value("memory_bytes", 0.0) / 1048576.0).c_str(),
                  p.value("cgroup", "").c_str());
    }
  }
  return 0;
}

int cmd_metrics(const std::string& socket) {
  json a;
  if (!ask(socket, {{"cmd", "metrics"}}, a)) {
    return 1;
  }
  std::string text = a.value("text", "");
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

void print_policy(const json& p) {
  std::printf("policy: %s\n", p.value("source", "?").c_str());
  std::printf("version %llu%s, digest %s\n",
              static_cast<unsigned long long>(p.value("version", 0ull)),
              p.value("name", "").empty() ? "" : (" (" + p.value("name", "") + ")").c_str(),
              p.value("digest", "?").c_str());
  Table t({"RULE", "TYPE", "ACTION", "WHAT"});
  for (const auto& r : p["rules"]) {
    std::string what;
    std::string type = r.value("type", "");
    if (type == "limit" || type == "intrusion") {
      what = r.value("metric", "");
      if (r.contains("labels")) {
        what += r["labels"].dump();
      }
      if (r.contains("above")) {
        what += " > " + fmt_number(r["above"].get<double>());
      } else if (r.contains("below")) {
        what += " < " + fmt_number(r["below"].get<double>());
      }
      if (r.value("for_seconds", 0.0) > 0) {
        what += " for " + fmt_seconds(r["for_seconds"].get<double>());
      }
    } else if (type == "access") {
      for (const auto& g : r["allow"]) {
        what += (what.empty() ? "" : "; ") + g.value("group", "?") + ": ";
        std::string cmds;
        for (const auto& c : g["commands"]) {
          cmds += (cmds.empty() ? "" : ",") + c.get<std::string>();
        }
        what += cmds;
      }
    } else if (type == "integrity") {
      what = std::to_string(r["watch"].size()) + " watched paths, every " +
             fmt_seconds(r.value("interval_seconds", 0.0));
    } else if (type == "network") {
      for (const auto& a : r["allow"]) {
        what += (what.empty() ? "allow " : ",") + a.get<std::string>();
      }
      if (r.value("allow_loopback", false)) {
        what += (what.empty() ? "" : " ") + std::string("+loopback");
      }
    } else if (type == "accelerator") {
      for (const auto& u : r["users"]) {
        what += (what.empty() ? "users " : ",") + u.get<std::string>();
      }
      for (const auto& c : r["cgroups"]) {
        what += " cgroup " + c.get<std::string>();
      }
    }
    t.add({r.value("rule", "?"), type, r.value("action", "report"), what});
  }
  t.print("");
}

int cmd_policy(const std::string& socket, bool as_json) {
  json a;
  if (!ask(socket, {{"cmd", "policy"}}, a)) {
    return 1;
  }
  if (as_json) {
    std::printf("%s\n", a["policy"].dump(2).c_str());
    return 0;
  }
  print_policy(a["policy"]);
  return 0;
}

// Validates a policy file or a signed bundle without any agent: the same parser the agent uses.
int cmd_policy_check(const std::string& file, const std::string& key_path) {
  std::string text;
  if (auto r = gridnode::platform::read_file(file, text, 4 << 20); !r) {
    return fail(r.error().message());
  }
  namespace agent = gridnode::agent;
  gridnode::platform::Result<agent::Policy> p;
  std::string note;
  if (text.starts_with(agent::kBundleMagic)) {
    if (key_path.empty()) {
      auto b = agent::parse_bundle(text);
      if (!b) {
        return fail(file + ": " + b.error().context);
      }
      p = agent::parse_policy(b->policy, file);
      note = " (signed bundle; signature not checked: give --key)";
    } else {
      std::string pem;
      if (auto r = gridnode::platform::read_file(key_path, pem, 64 << 10); !r) {
        return fail(r.error().message());
      }
      auto key = gridnode::crypto::PublicKey::from_pem(pem);
      if (!key) {
        return fail(key_path + ": " + key.error().message());
      }
      p = agent::verify_bundle(text, *key, file);
      note = " (signed bundle, signature verified)";
    }
  } else {
    p = agent::parse_policy(text, file);
  }
  if (!p) {
    return fail(p.error().message());
  }
  json j = p->to_json();
  std::printf("%s: valid%s, version %llu, %zu rules, digest %s\n", file.c_str(), note.c_str(),
              static_cast<unsigned long long>(p->version), j["rules"].size(),
              j["digest"].get<std::string>().c_str());
  return 0;
}

// "90s", "15m", "2h", "1d" or plain seconds.
bool parse_ago(const std::string& text, double& seconds) {
  if (text.empty()) {
    return false;
  }
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit(end);
  double mul = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : -1;
  if (end == text.c_str() || mul < 0 || !(v >= 0)) {
    return false;
  }
  seconds = v * mul;
  return true;
}

int cmd_events(const std::string& socket, bool as_json, const std::string& since) {
  json req = {{"cmd", "events"}};
  if (!since.empty()) {
    double s = 0;
    if (!parse_ago(since, s)) {
      return fail("--since " + since + ": a duration such as 90s, 15m, 2h or 1d");
    }
    req["since_seconds_ago"] = s;
  }
  json a;
  if (!ask(socket, req, a)) {
    return 1;
  }
  // Policy events, then the drivers' device events (kind "device": a BMC's SEL entries, a GPU's
  // XIDs), each list oldest first.
  json device = a.contains("device_events") ? a["device_events"] : json::array();
  if (as_json) {
    json all = a["events"];
    for (auto& e : device) {
      all.push_back(e);
    }
    std::printf("%s\n", all.dump(2).c_str());
    return 0;
  }
  if (a["events"].empty() && device.empty()) {
    std::printf("no policy or device events%s\n", since.empty() ? "" : " in that time");
    return 0;
  }
  if (!a["events"].empty()) {
    Table t({"TIME", "SEVERITY", "RULE", "SUBJECT", "DETAILS", "ACTION", "RESULT"});
    for (const auto& e : a["events"]) {
      std::string result = e.value("result", "");
      if (e.contains("suppressed")) {
        result += " (+" + std::to_string(e["suppressed"].get<std::uint64_t>()) + " rate-limited)";
      }
      t.add({e.value("time", ""), e.value("severity", ""), e.value("rule", ""),
             e.value("subject", ""), e.value("details", ""), e.value("action", ""), result});
    }
    t.print("");
  }
  if (!device.empty()) {
    if (!a["events"].empty()) {
      std::printf("\n");
    }
    Table t({"TIME", "SEVERITY", "SOURCE", "MESSAGE"});
    for (const auto& e : device) {
      t.add({e.value("time", ""), e.value("severity", ""), e.value("source", ""),
             e.value("message", "")});
    }
    t.print("");
  }
  return 0;
}

// Asks the agent to reload and waits for the outcome, so that `systemctl reload` (ExecReload=)
// fails visibly when the new configuration is refused. The wait is bounded below systemd's
// TimeoutStartSec= (60 s in the unit), which is what a reload is timed against.
int cmd_reload(const std::string& socket, bool as_json) {
  auto r = gridnode::agent::control_request(socket, {{"cmd", "reload"}}, std::chrono::seconds(50));
  if (!r) {
    return fail(r.error().message());
  }
  if (as_json) {
    std::printf("%s\n", r->dump(2).c_str());
    return r->value("ok", false) ? 0 : 1;
  }
  if (!r->value("ok", false)) {
    return fail("reload refused: " + r->value("error", std::string("no reason given")));
  }
  const json& done = (*r)["reloaded"];
  std::printf("reloaded %s\n", done.value("config", "?").c_str());
  for (const auto& key : done.value("on_restart", json::array())) {
    std::printf("note: %s changed and takes effect on restart (systemctl restart gridnoded)\n",
                key.get<std::string>().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"gridnodectl: ask the local gridnode agent what it sees.", "gridnodectl"};
  std::string socket = "/run/gridnode/control.sock";
  app.add_option("--socket", socket, "gridnoded's control socket")->capture_default_str();
  app.set_version_flag("--version", std::string("gridnodectl ") + GRIDNODE_VERSION);
  app.require_subcommand(1);

  bool status_json = false;
  auto* status = app.add_subcommand("status", "Version, uptime, drivers and their health");
  status->add_flag("--json", status_json, "Print JSON for scripts");

  bool sensors_json = false;
  std::string chip, type;
  auto* sensors = app.add_subcommand("sensors", "Sensor readings grouped by chip, with units");
  sensors->add_flag("--json", sensors_json, "Print JSON for scripts");
  sensors->add_option("--chip", chip, "Only chips whose name contains this");
  sensors->add_option("--type", type, "Only this sensor type (temp, in, fan, power, curr, ...)");

  bool gpus_json = false;
  auto* gpus = app.add_subcommand("gpus", "One row per accelerator: model, temperature, power, "
                                          "utilisation, memory, processes, health");
  gpus->add_flag("--json", gpus_json, "Print JSON for scripts");
  // NPUs (Ascend) are not GPUs: the same table under the name that fits them all.
  gpus->alias("accelerators");

  auto* metrics = app.add_subcommand("metrics", "Everything, as Prometheus text exposition");

  bool policy_json = false;
  std::string check_file, check_key;
  auto* policy = app.add_subcommand("policy", "The security policy in force: source, version, "
                                              "digest, rules");
  policy->add_flag("--json", policy_json, "Print JSON for scripts");
  auto* check = policy->add_subcommand("check", "Validate a policy file or signed bundle "
                                                "without applying it (no agent needed)");
  check->add_option("FILE", check_file, "policy.toml or a .bundle")->required();
  check->add_option("--key", check_key, "The grid's policy public key (PEM): verify a bundle");

  bool events_json = false;
  std::string since;
  auto* events = app.add_subcommand("events", "Recent policy events (violations, actions) and device events (SEL entries, XIDs)");
  events->add_flag("--json", events_json, "Print JSON for scripts");
  events->add_option("--since", since, "Only the last ... (90s, 15m, 2h, 1d)");

  bool reload_json = false;
  auto* reload = app.add_subcommand("reload", "Make the agent re-read agent.toml (and the policy "
                                              "file); exit 1 with the reason if it refuses them");
  reload->add_flag("--json", reload_json, "Print the agent's answer as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (status->parsed()) {
    return cmd_status(socket, status_json);
  }
  if (sensors->parsed()) {
    return cmd_sensors(socket, sensors_json, chip, type);
  }
  if (gpus->parsed()) {
    return cmd_gpus(socket, gpus_json);
  }
  if (metrics->parsed()) {
    return cmd_metrics(socket);
  }
  if (check->parsed()) {
    return cmd_policy_check(check_file, check_key);
  }
  if (policy->parsed()) {
    return cmd_policy(socket, policy_json);
  }
  if (events->parsed()) {
    return cmd_events(socket, events_json, since);
  }
  if (reload->parsed()) {
    return cmd_reload(socket, reload_json);
  }
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gridnodectl: %s\n", e.what());
  return 1;
}
