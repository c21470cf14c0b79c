#!/usr/bin/env bash
# The ipmi driver against OpenIPMI's simulated BMC (ipmi_sim, tests/fixtures/ipmi): gridnoded
# --once over RMCP+ (lanplus, opensesspriv) with its values asserted and compared sample by
# sample with Debian's prometheus-ipmi-exporter 1.6 reading the same simulator; then the
# daemon: SEL entries added while it runs become one device event each in `gridnodectl events`,
# none again after a restart, a cleared SEL is said, a simulator that stops makes the driver
# down while procfs goes on, and it comes back; a wrong password and a readable password file
# are clear errors. Skips (77) where ipmi_sim or the exporter is not installed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_lib.sh"

for tool in ipmi_sim sdrcomp ipmi-sel prometheus-ipmi-exporter ipmimonitoring socat jq curl; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "skip: $tool not installed (Debian: openipmi, freeipmi-tools, prometheus-ipmi-exporter)"
    exit 77
  fi
done

IPMI=$FIXTURES/ipmi
PORT=$(free_port)
CONSOLE=$(free_port)
SIM_STATE=$WORK/sim
mkdir -p "$SIM_STATE/ipmi_sim/gridnode"
sdrcomp -8 -o "$SIM_STATE/ipmi_sim/gridnode/sdr.20.main" "$IPMI/sensors.sdrs"
sed -e "s/@PORT@/$PORT/" -e "s/@CONSOLE@/$CONSOLE/" "$IPMI/lan.conf.in" >"$WORK/lan.conf"

# The same BMC through FreeIPMI's tools, for what the test does as an operator would.
# Short session timeouts: FreeIPMI's default (20 s a session) times 30 tries would outlast the
# test's own limit on a BMC that stays mute.
TOOLS=(-D LAN_2_0 -h "127.0.0.1:$PORT" -u gridnode -p s3cret-bmc-pass -W opensesspriv
  --session-timeout=3000 --retransmission-timeout=500)
SIM=
SEL_FILE=$SIM_STATE/ipmi_sim/gridnode/sel.20
# What the SEL held before a start (absent before the first one): a mute start is undone.
save_sel() { if [ -e "$SEL_FILE" ]; then cp "$SEL_FILE" "$WORK/sel.before"; else rm -f "$WORK/sel.before"; fi; }
restore_sel() { if [ -e "$WORK/sel.before" ]; then cp "$WORK/sel.before" "$SEL_FILE"; else rm -f "$SEL_FILE"; fi; }
start_sim() {
  save_sel
  ipmi_sim -c "$WORK/lan.conf" -f "$IPMI/bmc.emu" -s "$SIM_STATE" -n >>"$WORK/sim.log" 2>&1 &
  SIM=$!
  PIDS+=("$SIM")
  if ! wait_for "ipmi_sim console" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$CONSOLE"; then
    echo "skip: ipmi_sim does not start here:"
    sed 's/^/  sim: /' "$WORK/sim.log"
    exit 77
  fi
  # The console is up before the LAN channel answers; and a UDP port another program holds
  # (free_port checks TCP) would leave the BMC mute: both are seen here, not as odd failures.
  local try attempt
  for attempt in 1 2 3; do
    for try in $(seq 15); do
      # Not wait_for's 50 ms: every try is an IPMI session, and the simulator has a few only.
      if ipmi-sel "${TOOLS[@]}" --info >>"$WORK/tools.log" 2>&1; then
        return 0
      fi
      sleep 0.3
    done
    # A simulator restarted while the agent keeps asking is now and then mute on its LAN
    # channel (seen under load): started again, up to three times, before it is a failure.
    echo "ipmi_sim mute on its LAN channel (attempt $attempt), started again"
    stop_sim
    # The simulator keeps its SEL in its state dir and every start logs the emulation's
    # entries again: the retry starts from the SEL the mute start found, not a doubled one.
    restore_sel
    sleep 1
    ipmi_sim -c "$WORK/lan.conf" -f "$IPMI/bmc.emu" -s "$SIM_STATE" -n >>"$WORK/sim.log" 2>&1 &
    SIM=$!
    PIDS+=("$SIM")
    wait_for "ipmi_sim console" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$CONSOLE" || true
  done
  fail "ipmi_sim answers on 127.0.0.1:$PORT"
  sed 's/^/  sim: /' "$WORK/sim.log"
  tail -n 5 "$WORK/tools.log" | sed 's/^/  tools: /'
  finish
  exit 1
}
stop_sim() { kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true; }
# An emulation command (ipmi_sim_cmd(5)) on the simulator's console.
sim_cmd() { printf '%s\n' "$*" | socat -t1 - "TCP:127.0.0.1:$CONSOLE" >>"$WORK/console.log" 2>&1; }
start_sim

printf 's3cret-bmc-pass\n' >"$WORK/bmc.pass"
chmod 600 "$WORK/bmc.pass"
write_config() {  # write_config PASSWORD_FILE [extra agent keys]
  cat >"$WORK/agent.toml" <<EOF
[agent]
drivers = ["procfs", "ipmi"]
interval = 0.5
${2:-}
[ipmi]
interface = "lanplus"
host = "127.0.0.1"
port = $PORT
username = "gridnode"
password_file = "$1"
workaround_flags = ["opensesspriv"]
timeout = 1
interval = 1
EOF
}
write_config "$WORK/bmc.pass"

# --- once: the simulated board's readings, under ipmi_exporter's names
mkdir -p "$WORK/once-state"
"$BIN/gridnoded" --once --config "$WORK/agent.toml" --state-dir "$WORK/once-state" \
  >"$WORK/once.prom" 2>"$WORK/once.log"
for line in \
  'ipmi_up{collector="ipmi"} 1' 'ipmi_up{collector="chassis"} 1' 'ipmi_up{collector="sel"} 1' \
  'ipmi_temperature_celsius{id="1",name="Inlet Temp"} 24' \
  'ipmi_temperature_celsius{id="2",name="CPU Temp"} 83' \
  'ipmi_fan_speed_rpm{id="3",name="FAN1"} 5400' 'ipmi_fan_speed_state{id="4",name="FAN2"} 2' \
  'ipmi_voltage_volts{id="5",name="12V"} 12.06' 'ipmi_voltage_volts{id="6",name="3.3V"} 3.3' \
  'ipmi_current_amperes{id="7",name="PSU1 Current"} 5.2' \
  'ipmi_power_watts{id="8",name="PSU1 Power"} 244' \
  'ipmi_sensor_state{id="10",name="PSU2 Status",type="Power Supply"} 1' \
  'ipmi_chassis_power_state 0' 'ipmi_sel_logs_count 2' 'gridnode_driver_up{driver="ipmi"} 1'; do
  check "once: $line" grep -qxF "$line" "$WORK/once.prom"
done
check "once: no DCMI from a BMC without it" bash -c '! grep -q "^ipmi_dcmi\|collector=\"dcmi\"" "$1"' _ "$WORK/once.prom"
check "once: the SDR cache is in the state dir" test -d "$WORK/once-state/ipmi-sdr-cache"

# --- parity: prometheus-ipmi-exporter 1.6 on the same simulator, same credentials and flags
EXPORTER_PORT=$(free_port)
mkdir -p "$WORK/exporter-cache"
cat >"$WORK/ipmi_exporter.yml" <<EOF
modules:
  default:
    user: "gridnode"
    pass: "s3cret-bmc-pass"
    driver: "LAN_2_0"
    privilege: "operator"
    timeout: 2000
    workaround_flags: ["opensesspriv"]
    collectors: [ipmi, chassis, sel]
    custom_args:
      ipmi: ["--sdr-cache-directory", "$WORK/exporter-cache"]
EOF
EXPORTER=$(command -v prometheus-ipmi-exporter || echo /usr/sbin/prometheus-ipmi-exporter)
"$EXPORTER" --config.file="$WORK/ipmi_exporter.yml" \
  --web.listen-address="127.0.0.1:$EXPORTER_PORT" >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
wait_for "ipmi_exporter" 10 curl -sf "http://127.0.0.1:$EXPORTER_PORT/metrics"
curl -sf "http://127.0.0.1:$EXPORTER_PORT/ipmi?target=127.0.0.1:$PORT" >"$WORK/exporter.prom"
# The exporter's NaN (a discrete sensor's reading, FreeIPMI's N/A) is an absent sample here, and
# its scrape duration is its own.
normalise "$WORK/exporter.prom" '^ipmi_' | grep -v ' nan$' | grep -v '^ipmi_scrape_duration' \
  >"$WORK/exporter.txt"
normalise "$WORK/once.prom" '^ipmi_' >"$WORK/ours.txt"
check "parity: the exporter read the simulator" grep -q '^ipmi_up{collector="ipmi"} 1$' "$WORK/exporter.txt"
if diff -u "$WORK/exporter.txt" "$WORK/ours.txt" >"$WORK/parity.diff"; then
  pass "parity: $(wc -l <"$WORK/ours.txt") samples equal to prometheus-ipmi-exporter's"
else
  fail "parity: samples differ from prometheus-ipmi-exporter's"
  sed 's/^/  /' "$WORK/parity.diff"
fi
check "parity: the exporter's HELP texts are ours" bash -c \
  'diff <(grep "^# HELP ipmi_temperature_celsius\|^# HELP ipmi_sensor_state\|^# HELP ipmi_up" "$1" | sort) \
        <("$2/gridnoded" --once --config "$3" --state-dir "$4" 2>/dev/null | grep "^# HELP ipmi_temperature_celsius\|^# HELP ipmi_sensor_state\|^# HELP ipmi_up" | sort)' \
  _ "$WORK/exporter.prom" "$BIN" "$WORK/agent.toml" "$WORK/once-state"

# --- the daemon: the SEL as device events, exactly once
STATE=$WORK/state
mkdir -p "$STATE"
ROOTS=()
# A policy limit acts on the BMC's readings as on any metric: FAN2 is critical (state 2).
cat >"$WORK/policy.toml" <<'TOML'
[policy]
version = 1
[[limit]]
name = "bmc-fan-critical"
metric = "ipmi_fan_speed_state"
above = 1.5
severity = "crit"
TOML
start_agent --policy "$WORK/policy.toml"
wait_for "BMC sensors" 15 bash -c '"$@" sensors --chip bmc | grep -q FAN2' _ "${CTL[@]}" || true
check "sensors: the BMC's FAN2 is critical" bash -c '"$@" sensors --chip bmc | grep -E "FAN2 .*400 RPM.*CRITICAL"' _ "${CTL[@]}"
check "sensors: PSU2 Status warns" bash -c '"$@" sensors --chip bmc | grep -E "PSU2 Status.*WARNING"' _ "${CTL[@]}"
check "sensors: CPU Temp's thresholds" bash -c '"$@" sensors --chip bmc --json | jq -e ".[] | select(.label == \"CPU Temp\") | .upper_non_critical == 80 and .crit == 90 and .upper_non_recoverable == 100"' _ "${CTL[@]}"
check "sensors: FAN2's lower critical in the MIN column" bash -c '"$@" sensors --chip bmc | grep -E "FAN2 .*400 RPM +500 RPM"' _ "${CTL[@]}"
check "sensors: 12V in volts" bash -c '"$@" sensors --chip bmc --json | jq -e ".[] | select(.label == \"12V\") | .value == 12.06 and .unit == \"V\" and .type == \"in\""' _ "${CTL[@]}"
bmc_limit() {
  "${CTL[@]}" events --json | jq -e '[.. | objects | select(.rule? == "bmc-fan-critical") | select(tostring | test("FAN2"))] | length >= 1' >/dev/null
}
check "policy: a limit on ipmi_fan_speed_state fires for FAN2" wait_for "the BMC limit event" 15 bmc_limit
sel_events() {  # the agent's SEL entry events as "record_id sensor", one a line
  "${CTL[@]}" events --json |
    jq -r '.[] | select(.kind == "device" and .source == "ipmi" and .fields.record_id != null) |
           "\(.fields.record_id) \(.fields.sensor)"'
}
sel_count_is() { [ "$(sel_events | wc -l)" -eq "$1" ]; }
check "SEL: the two entries there at start are two events" wait_for "two SEL events" 15 sel_count_is 2
presence() {
  [ "$(sel_events)" = "$(printf '1 PSU1 Status\n2 PSU2 Status')" ] ||
    { echo "  got: $(sel_events | tr "\n" ";") SEL: $(ipmi-sel "${TOOLS[@]}" 2>&1 | tr "\n" ";")"; false; }
}
check "SEL: presence of PSU1 and PSU2" presence
# FAN2 below its lower critical threshold (an event record as a BMC logs it: sensor type 4,
# sensor 4, threshold event, "lower critical going low", reading 8 = 400 RPM, threshold 10).
sim_cmd sel_add 0x20 2 0 0 0 0 0x20 0x00 0x04 0x04 0x04 0x01 0x52 0x08 0x0a
check "SEL: an entry added while the agent runs is one event" wait_for "third SEL event" 15 sel_count_is 3
sleep 2  # a few more rounds: nothing new must appear
check "SEL: ... and only one" sel_count_is 3
ev=$("${CTL[@]}" events --json)
check "SEL: the event says what the BMC logged" jq_is \
  '[.[] | select(.kind == "device" and .fields.record_id == "3")][0] |
   .severity == "err" and .fields.sensor == "FAN2" and .fields.state == "critical" and
   (.fields.event | startswith("Lower Critical - going low")) and (.message | startswith("SEL 3: FAN2 (Fan)"))' <<<"$ev"
check "SEL: the position is kept in the state dir" grep -q '^record_id 3$' "$STATE/ipmi-sel.position"
check "events: the table shows it" bash -c '"$@" events | grep -q "SEL 3: FAN2 (Fan)"' _ "${CTL[@]}"

# A restart reads on from the position: the old entries are not events again, a new one is.
kill "$AGENT"
wait "$AGENT" 2>/dev/null || true
start_agent
sleep 2
check "restart: no entry reported again" sel_count_is 0
sim_cmd sel_add 0x20 2 0 0 0 0 0x20 0x00 0x04 0x04 0x03 0x01 0x50 0x13 0x14
check "restart: a new entry is one event" wait_for "SEL event after restart" 15 sel_count_is 1
entry4() { [ "$(sel_events)" = "4 FAN1" ] || { echo "  got: $(sel_events | tr "\n" ";")"; false; }; }
check "restart: it is entry 4" entry4

# A SEL cleared while the agent runs is said, in an event and a log line.
ipmi-sel "${TOOLS[@]}" --clear >>"$WORK/tools.log" 2>&1
cleared() {
  "${CTL[@]}" events --json | jq -e '[.[] | select(.kind == "device" and .fields.change == "cleared")] | length == 1' >/dev/null
}
check "clear: the cleared SEL is an event" wait_for "SEL cleared event" 15 cleared
check "clear: and a log line" grep -q 'ipmi: SEL cleared' "$WORK/agent.log"
sim_cmd sel_add 0x20 2 0 0 0 0 0x20 0x00 0x04 0x04 0x04 0x01 0x52 0x08 0x0a
after_clear() { [ "$(sel_events | wc -l)" -eq 2 ]; }
check "clear: the first entry after the clear is an event" wait_for "entry after clear" 15 after_clear

# --- a BMC that stops answering: down (procfs unaffected), and back when it returns
driver_state() { "${CTL[@]}" status --json | jq -r --arg d "$1" '.drivers[] | select(.name == $d) | .state'; }
ipmi_is() { [ "$(driver_state ipmi)" = "$1" ]; }
check "daemon: ipmi up" ipmi_is up
stop_sim
check "BMC gone: the ipmi driver is down" wait_for "ipmi down" 20 ipmi_is down
check "BMC gone: procfs still up" bash -c '[ "$("$@" status --json | jq -r ".drivers[] | select(.name == \"procfs\") | .state")" = up ]' _ "${CTL[@]}"
check "BMC gone: the reason is said" grep -q 'ipmi: BMC not answering' "$WORK/agent.log"
start_sim
check "BMC back: the ipmi driver is up again" wait_for "ipmi up again" 30 ipmi_is up
check "BMC back: and says so" grep -q 'ipmi: BMC answering again' "$WORK/agent.log"
kill "$AGENT"
wait "$AGENT" 2>/dev/null || true

# --- a wrong password and a password file others may read: clear errors
printf 'not-the-password\n' >"$WORK/wrong.pass"
chmod 600 "$WORK/wrong.pass"
write_config "$WORK/wrong.pass"
"$BIN/gridnoded" --once --config "$WORK/agent.toml" --state-dir "$WORK/once-state" \
  >"$WORK/wrong.prom" 2>"$WORK/wrong.log" || true
check "wrong password: the driver is down" grep -qxF 'gridnode_driver_up{driver="ipmi"} 0' "$WORK/wrong.prom"
check "wrong password: the log says so" grep -q 'invalid password' "$WORK/wrong.log"
chmod 644 "$WORK/bmc.pass"
write_config "$WORK/bmc.pass"
if "$BIN/gridnoded" --once --config "$WORK/agent.toml" --state-dir "$WORK/once-state" \
  >/dev/null 2>"$WORK/mode.log"; then
  fail "readable password file: refused"
else
  check "readable password file: refused, saying why" grep -q 'ipmi.password_file: .*mode 0644' "$WORK/mode.log"
fi

finish
