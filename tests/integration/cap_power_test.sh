#!/usr/bin/env bash
# cap_power on the daemon's real path: gridnoded loads the fake libnvidia-ml.so.1 (through
# dlopen, as it would NVIDIA's) and sets power limits through it. GPU 0 heats up and cools down
# over the scenario's steps (one per sweep), GPU 1 stays hot; a limit rule with action cap_power
# must lower each one's limit after `for`, and restore GPU 0's when it is back under `clear`.
# Then the agent is stopped while GPU 1 is capped (the fake keeps the limits it was given in a
# file, as the kernel driver keeps them past the process) and started again on a cool GPU: the
# recorded original comes back. Then a setter that refuses (NO_PERMISSION, as for a non-root
# agent) is an event with the reason, and the agent keeps running. The record is keyed by GPU
# UUID: after a "reboot" that renumbers the GPUs the capped one is restored, not the one that has
# its old index; a record by index (the previous version's) is converted. Last, two rules capping
# one GPU: the lowest cap applies, a rule that clears leaves the other's cap, the original comes
# back when the last clears, and also after a restart while both held their caps.
source "$(dirname "$0")/lib.sh"

[ -f "${GRIDNODE_FAKE_NVML:-}" ] || { echo "fake libnvidia-ml.so.1 not built: $GRIDNODE_FAKE_NVML"; exit 1; }
export FAKE_NVML_SCENARIO=$WORK/scenario
CTL=("$BIN/gridnodectl" --socket "$WORK/a.sock")
U0=GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f405060  # the fixture's GPU 0 and 1
U1=GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171

# The two H100s of the fixture, limits 100..700 W; $1: GPU 0's temperatures per step,
# $2: GPU 1's; $3: extra lines.
scenario() {
  { grep -v '^process' "$FIXTURES/nvml/two_gpus.scenario"
    echo "value * power_limit_min_mw 100000"
    echo "value * power_limit_max_mw 700000"
    echo "value * power_limit_default_mw 700000"
    echo "value 0 gpu_temp $1"
    echo "value 1 gpu_temp $2"
    echo "power_limit_state $WORK/nvml-limits"
    printf '%s' "${3:-}"
  } >"$FAKE_NVML_SCENARIO"
}
cat >"$WORK/policy.toml" <<'TOML'
[[limit]]
name = "gpu-hot"
metric = "DCGM_FI_DEV_GPU_TEMP"
above = 85
clear = 80
for = 1
severity = "crit"
action = "cap_power"
power_limit = 250

[events]
burst = 100
TOML

start() {
  "$BIN/gridnoded" --socket "$WORK/a.sock" --state-dir "$WORK/state" --interval "${INTERVAL:-0.2}" \
    --sysfs-root "$FIXTURES/hwmon/coretemp/sys" --nvml-library "$GRIDNODE_FAKE_NVML" \
    --policy "$WORK/policy.toml" 2>>"$WORK/agent.log" &
  AGENT=$!
  PIDS+=("$AGENT")
  wait_for "agent socket" 10 "${CTL[@]}" status
}
stop() { kill -TERM "$AGENT"; wait "$AGENT" 2>/dev/null || true; }
# The limit `gridnodectl gpus` shows for GPU $1, in W.
limit_of() { "${CTL[@]}" gpus --json | jq -r ".[] | select(.index == $1) | .power_limit_watts"; }
limit_is() { [ "$(limit_of "$1")" = "$2" ]; }
# DCGM_FI_DEV_POWER_MGMT_LIMIT for GPU $1 in `gridnodectl metrics`.
metric_of() { "${CTL[@]}" metrics | awk -v g="gpu=\"$1\"" '/^DCGM_FI_DEV_POWER_MGMT_LIMIT\{/ && index($0, g) { print $NF }'; }
# rule_events_with RULE JQ-CONDITION: at least one of RULE's cap_power events satisfies it.
rule_events_with() {
  "${CTL[@]}" events --json | jq_is "[.. | objects | select(.rule? == \"$1\" and .action? == \"cap_power\") | select($2)] | length >= 1"
}
events_with() { rule_events_with gpu-hot "$1"; }
# record_is UUID JQ-CONDITION: power-caps.json satisfies it, with $u the UUID.
record_is() { [ "$(jq -r --arg u "$1" "$2" "$WORK/state/power-caps.json")" = true ]; }

# GPU 0: 60 °C for 3 steps, 95 °C for 25 (at 0.2 s a step, at least 5 s: `for` is 1 s), then 70.
hot0="60 60 60 $(printf '95 %.0s' $(seq 25))70"
scenario "$hot0" "95"
start

wait_for "GPU 1 capped" 20 events_with '(.subject | contains("gpu=\"1\"")) and .result == "power limit 250.0 W, was 700.0 W"'
check "event: GPU 1 capped to 250 W, was 700 W" events_with '(.subject | contains("gpu=\"1\"")) and .result == "power limit 250.0 W, was 700.0 W"'
wait_for "the next sweep reports GPU 1's cap" 10 limit_is 1 250
check "gridnodectl gpus: GPU 1's limit is 250 W" limit_is 1 250
check "gridnodectl metrics: DCGM_FI_DEV_POWER_MGMT_LIMIT{gpu=\"1\"} 250" [ "$(metric_of 1)" = 250 ]
wait_for "GPU 0 capped" 20 events_with '(.subject | contains("gpu=\"0\"")) and (.details | endswith("power limit lowered"))'
check "event: GPU 0 capped while hot" events_with '(.subject | contains("gpu=\"0\"")) and .result == "power limit 250.0 W, was 700.0 W"'
wait_for "GPU 0 restored" 30 events_with '(.subject | contains("gpu=\"0\"")) and (.details | endswith("power limit restored"))'
check "event: GPU 0 restored to 700 W once back under clear" events_with '(.subject | contains("gpu=\"0\"")) and .result == "power limit 700.0 W"'
wait_for "the next sweep reports GPU 0's original limit" 10 limit_is 0 700
check "gridnodectl gpus: GPU 0's limit is 700 W again" limit_is 0 700
check "GPU 1 is still capped" limit_is 1 250
check "journal line names the rule and the action" grep -q "gpu-hot.*cap_power" "$WORK/agent.log"
check "the original limit is recorded in the state dir" \
  record_is "$U1" '.[$u].original_mw == 700000 and .[$u].rule == "gpu-hot" and .[$u].gpu == 1 and length == 1'

# Stopped while GPU 1 is capped: the cap stays in force (the fake, like the kernel driver, keeps
# it); the next start on a cool GPU restores the recorded original.
stop
check "the cap outlives the agent" grep -qx "$U1 250000" "$WORK/nvml-limits"
scenario "70" "70"
start
wait_for "GPU 1 restored after the restart" 20 events_with '(.details | contains("last stopped"))'
check "event: GPU 1 restored after the restart, to 700 W" events_with ".subject == \"GPU 1 ($U1)\" and .result == \"power limit 700.0 W\""
wait_for "GPU 1's original limit is reported" 10 limit_is 1 700
check "gridnodectl gpus: GPU 1's limit is 700 W again" limit_is 1 700
check "the record is cleared" jq_is '. == {}' "$WORK/state/power-caps.json"
stop

# A setter that refuses: an event with the reason; no limit changes; the agent keeps running.
rm -f "$WORK/nvml-limits"
scenario "95" "70" "error 0 nvmlDeviceSetPowerManagementLimit 4"$'\n'
start
wait_for "the refused cap's event" 20 events_with '.result? // "" | startswith("failed: ")'
check "event: failed, naming root or CAP_SYS_ADMIN" events_with '.details == "cannot cap power" and (.result | startswith("failed: GPU 0 (GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f405060): nvmlDeviceSetPowerManagementLimit(250 W) needs root or CAP_SYS_ADMIN"))'
check "GPU 0 keeps its limit" limit_is 0 700
check "the agent still runs" kill -0 "$AGENT"
check "and answers" "${CTL[@]}" status
check "nothing is recorded for a cap that did not happen" jq_is '. == {}' "$WORK/state/power-caps.json"
stop

# Renumbered: GPU 1 is capped; then the GPUs come back in the other order (as after a reboot
# with a GPU added or moved). The fake keeps each limit with its UUID, as the hardware would.
rm -f "$WORK/nvml-limits"
scenario "70" "95"
start
wait_for "GPU 1 capped" 20 events_with '(.subject | contains("gpu=\"1\"")) and .result == "power limit 250.0 W, was 700.0 W"'
stop
check "the record names GPU 1 by its UUID" record_is "$U1" '.[$u].gpu == 1 and length == 1'
scenario "70" "70" "uuid 0 $U1"$'\n'"uuid 1 $U0"$'\n'
start
wait_for "the capped GPU restored" 20 events_with '(.details | contains("last stopped"))'
check "event: the capped GPU, now GPU 0, restored to 700 W" events_with ".subject == \"GPU 0 ($U1)\" and .result == \"power limit 700.0 W\""
check "its limit is set back" grep -qx "$U1 700000" "$WORK/nvml-limits"
check "the GPU that is number 1 now is left alone" bash -c "! grep -q '$U0' '$WORK/nvml-limits'"
wait_for "GPU 0's original limit is reported" 10 limit_is 0 700
check "gridnodectl gpus: GPU 0's limit is 700 W" limit_is 0 700
check "the record is cleared" jq_is '. == {}' "$WORK/state/power-caps.json"
stop

# The previous version's record, by index: converted to UUIDs and restored.
echo "$U1 250000" >"$WORK/nvml-limits"
echo '{"1":{"original_mw":700000,"rule":"gpu-hot"}}' >"$WORK/state/power-caps.json"
scenario "70" "70"
start
wait_for "GPU 1 restored from the old record" 20 events_with '(.details | contains("last stopped"))'
check "event: GPU 1 restored from the record by index, to 700 W" events_with ".subject == \"GPU 1 ($U1)\" and .result == \"power limit 700.0 W\""
check "the log says the record was converted" grep -q "cap_power: record converted from GPU indices to UUIDs.*gpus=\"1=$U1\"" "$WORK/agent.log"
check "the record is cleared" jq_is '. == {}' "$WORK/state/power-caps.json"
stop

# Two rules on one GPU: gpu-warm caps at 300 W above 80 °C, gpu-hot at 250 W above 85 °C.
cat >"$WORK/policy.toml" <<'TOML'
[[limit]]
name = "gpu-warm"
metric = "DCGM_FI_DEV_GPU_TEMP"
above = 80
clear = 75
for = 1
action = "cap_power"
power_limit = 300

[[limit]]
name = "gpu-hot"
metric = "DCGM_FI_DEV_GPU_TEMP"
above = 85
clear = 80
for = 1
action = "cap_power"
power_limit = 250

[events]
burst = 100
TOML
# GPU 0: 82 °C (gpu-warm only), 90 (both), 78 (gpu-warm only again), 70 (neither), 9 steps
# each (the fake's scenario holds 32), at 0.5 s a step: 4.5 s, for a `for` of 1 s.
steps() { printf "$1 %.0s" $(seq 9); }
rm -f "$WORK/nvml-limits"
scenario "60 60 60 $(steps 82)$(steps 90)$(steps 78)70" "70"
INTERVAL=0.5 start
wait_for "gpu-warm's cap" 20 rule_events_with gpu-warm '.result == "power limit 300.0 W, was 700.0 W"'
check "event: gpu-warm caps GPU 0 at 300 W" rule_events_with gpu-warm '.details == "GPU 0 power limit lowered" and .result == "power limit 300.0 W, was 700.0 W"'
wait_for "GPU 0 at 300 W" 10 limit_is 0 300
check "gridnodectl gpus: GPU 0's limit is 300 W" limit_is 0 300
wait_for "gpu-hot's cap" 20 events_with '.result == "power limit 250.0 W, was 300.0 W"'
check "event: gpu-hot's lower cap applies" events_with '.details == "GPU 0 power limit lowered" and .result == "power limit 250.0 W, was 300.0 W"'
wait_for "GPU 0 at 250 W" 10 limit_is 0 250
check "gridnodectl gpus: GPU 0's limit is 250 W" limit_is 0 250
check "the record keeps the original, not gpu-warm's cap" record_is "$U0" '.[$u].original_mw == 700000 and .[$u].rule == "gpu-warm"'
wait_for "gpu-hot clears" 20 events_with '.details | startswith("GPU 0 power limit raised")'
check "event: gpu-hot clears, gpu-warm's cap applies again" events_with '.details == "GPU 0 power limit raised, rule gpu-warm'"'"'s cap applies" and .result == "power limit 300.0 W (gpu-warm), was 250.0 W"'
wait_for "GPU 0 back at 300 W" 10 limit_is 0 300
check "gridnodectl gpus: GPU 0's limit is 300 W again" limit_is 0 300
check "the record is still there" record_is "$U0" '.[$u].original_mw == 700000'
wait_for "gpu-warm clears" 20 rule_events_with gpu-warm '.details == "GPU 0 power limit restored"'
check "event: the last cap clears, the original comes back" rule_events_with gpu-warm '.details == "GPU 0 power limit restored" and .result == "power limit 700.0 W"'
wait_for "GPU 0 at 700 W" 10 limit_is 0 700
check "gridnodectl gpus: GPU 0's limit is 700 W again" limit_is 0 700
check "the record is cleared" jq_is '. == {}' "$WORK/state/power-caps.json"
stop

# Stopped while both rules hold their caps: the next start restores the original (an event of
# the rule that capped first).
either_rule() { rule_events_with gpu-warm "$1" || rule_events_with gpu-hot "$1"; }
rm -f "$WORK/nvml-limits"
scenario "90" "70"
start
wait_for "both caps" 20 rule_events_with gpu-warm '.result | startswith("power limit")'
wait_for "both caps" 20 events_with '.result | startswith("power limit 250.0 W")'
wait_for "GPU 0 at 250 W" 10 limit_is 0 250
stop
check "the lowest cap outlives the agent" grep -qx "$U0 250000" "$WORK/nvml-limits"
check "the record holds the original" record_is "$U0" '.[$u].original_mw == 700000 and length == 1'
scenario "70" "70"
start
wait_for "GPU 0 restored after the restart" 20 either_rule '(.details | contains("last stopped"))'
check "event: GPU 0 restored to its original 700 W" either_rule ".subject == \"GPU 0 ($U0)\" and .result == \"power limit 700.0 W\""
wait_for "GPU 0 at 700 W" 10 limit_is 0 700
check "gridnodectl gpus: GPU 0's limit is 700 W" limit_is 0 700
check "the record is cleared" jq_is '. == {}' "$WORK/state/power-caps.json"
finish
