#!/usr/bin/env bash
# Huawei Ascend end to end with the real programs: gridnoded loads the fake libdcmi.so
# (tests/fakes/fake_dcmi.c) through --ascend-library; --once prints npu-exporter's names, the
# daemon answers `gridnodectl accelerators` (and `gpus`), the policy terminates a process the
# library reports on an NPU, refuses cap_power on an Ascend metric when loaded, and a health
# change, an error code and a lost NPU reach the signed report as device events.
source "$(dirname "$0")/lib.sh"

FAKE=${GRIDNODE_FAKE_DCMI:-$BIN/../fakes/dcmi/libdcmi.so}
[ -f "$FAKE" ] || { echo "no fake DCMI at $FAKE"; exit 1; }
export FAKE_DCMI_SCENARIO=$WORK/scenario
SOCK=$WORK/c.sock
PROC=$WORK/proc
mkdir -p "$PROC/4242" "$PROC/sys/kernel/random"
cp "$FIXTURES/procfs/basic/proc/sys/kernel/random/boot_id" "$PROC/sys/kernel/random/boot_id"
printf 'Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n' >"$PROC/4242/status"
printf '0::/slurm/uid_1000/job_77\n' >"$PROC/4242/cgroup"
printf '[agent]\ndrivers = ["ascend", "procfs"]\n[control]\ngroup = "0"\n' >"$WORK/agent.toml"
ROOTS=(--procfs-root "$PROC" --ascend-library "$FAKE" --config "$WORK/agent.toml")
cp "$FIXTURES/ascend/two_chips.scenario" "$FAKE_DCMI_SCENARIO"

# --- --once: one sweep, Prometheus text
out=$("$BIN/gridnoded" "${ROOTS[@]}" --once)
check "once: ascend driver up" grep -q '^gridnode_driver_up{driver="ascend"} 1$' <<<"$out"
check "once: machine_npu_nums" grep -q '^machine_npu_nums 2$' <<<"$out"
check "once: power in W, exact" grep -q '^npu_chip_info_power{id="4",.*} 183.5$' <<<"$out"
check "once: npu-exporter labels" grep -q '^npu_chip_info_hbm_used_memory{id="4",model_name="910B3-Ascend-V1",pcie_bus_info="0000:C1:00.0",vdie_id="1A2B3C4D-00000001-00000002-00000003-00000004"} 30000$' <<<"$out"
check "once: process with uid and cgroup" grep -q '^gridnode_gpu_process_memory_used_bytes{.*cgroup="/slurm/uid_1000/job_77",gpu="4",pid="4242",uid="1000"} 31457280000$' <<<"$out"
check "once: node summary for huawei" bash -c 'grep -q "^gridnode_accelerators{vendor=\"huawei\"} 2$" <<<"$1" && grep -q "^gridnode_accelerators_busy{vendor=\"huawei\"} 1$" <<<"$1"' _ "$out"
check "once: one HELP per family" bash -c '[ -z "$(grep "^# HELP" <<<"$1" | sort | uniq -d)" ]' _ "$out"

# --- no library: absent; a DCMI without DCMI 2's entry points: down, naming the missing one
out=$("$BIN/gridnoded" --procfs-root "$PROC" --config "$WORK/agent.toml" \
  --ascend-library "$WORK/nowhere/libdcmi.so" --once --json)
check "no library: ascend absent" jq_is '.status.drivers[] | select(.name=="ascend") | .state == "absent"' <<<"$out"
OLD=$(dirname "$FAKE")/../dcmi-old/libdcmi.so
if [ -f "$OLD" ]; then
  out=$("$BIN/gridnoded" --procfs-root "$PROC" --config "$WORK/agent.toml" \
    --ascend-library "$OLD" --once --json 2>"$WORK/old.log")
  check "old DCMI: ascend down" jq_is '.status.drivers[] | select(.name=="ascend") | .state == "down"' <<<"$out"
  check "old DCMI: the missing entry point is named" grep -q "no dcmi_get_device_logic_id" "$WORK/old.log"
fi
printf '[agent]\ndrivers = ["ascend"]\n[ascend]\ncall_timeout = "soon"\n' >"$WORK/bad.toml"
check "[ascend] bad value: refused naming the key" bash -c '! "$@" >/dev/null 2>"$0.err"; grep -q "bad.toml:4: ascend.call_timeout" "$0.err"' "$WORK/bad" "$BIN/gridnoded" --config "$WORK/bad.toml" --once

# --- cap_power on an Ascend metric is refused when the policy is loaded
cat >"$WORK/cap.toml" <<'TOML'
[[limit]]
name = "npu-hot"
metric = "npu_chip_info_temperature"
above = 90
action = "cap_power"
power_limit = 300
TOML
check "cap_power on npu_ refused at load" bash -c '! "$1" policy check "$2" >"$2.out" 2>&1; grep -q "no power-limit control" "$2.out"' _ "$BIN/gridnodectl" "$WORK/cap.toml"

# --- the daemon and the technician's view
"$BIN/gridnoded" "${ROOTS[@]}" --socket "$SOCK" --interval 0.2 --state-dir "$WORK/state" \
  2>>"$WORK/agent.log" &
PIDS+=($!)
wait_for "first sweep" 10 bash -c '[ "$("$1" --socket "$2" status --json | jq -r ".rounds >= 1")" = true ]' _ "$BIN/gridnodectl" "$SOCK"
acc=$("$BIN/gridnodectl" --socket "$SOCK" accelerators)
echo "$acc"
check "accelerators: a row per NPU" grep -Eq "^npu4 +910B3-Ascend-V1 +47 °C +183.5 W +63 % +30000/65536 MiB +1 +ok +0000:C1:00.0$" <<<"$acc"
check "accelerators: the idle NPU" grep -Eq "^npu5 +910B3-Ascend-V1 +45 °C +92 W +0 % +3000/65536 MiB +0 +ok" <<<"$acc"
check "gpus: the old name still works" bash -c '[ "$("$1" --socket "$2" gpus)" = "$3" ]' _ "$BIN/gridnodectl" "$SOCK" "$acc"
json=$("$BIN/gridnodectl" --socket "$SOCK" accelerators --json)
check "accelerators --json: two NPUs with vdie_id and process owner" jq_is 'length == 2 and .[0].uuid == "1A2B3C4D-00000001-00000002-00000003-00000004" and .[0].processes[0].uid == "1000"' <<<"$json"

# --- a health change, an error code and a lost NPU reach the signed report
RSTATE=$WORK/rstate
"$BIN/gridnoded" enroll --node-id node-npu --state-dir "$RSTATE" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=test-grid-ca -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl x509 -req -in "$RSTATE/node.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -out "$RSTATE/node.crt" 2>/dev/null
{ cat "$FIXTURES/ascend/two_chips.scenario"; printf 'value 0 health 0 2\ncodes 0 1 80E01801\nlost 1 2\n'; } >"$FAKE_DCMI_SCENARIO"
"$BIN/gridnoded" "${ROOTS[@]}" --state-dir "$RSTATE" --interval 0.05 --once \
  --report "$WORK/r.gnr" --reports 4 >/dev/null
inspected=$("$BIN/gridnode-collector" inspect --cert "$RSTATE/node.crt" "$WORK/r.gnr")
jqs_is() { [ "$(jq -rs "$1")" = true ]; }
check "reports verified" jqs_is 'all(.verified)' <<<"$inspected"
check "the health change is a device event" jqs_is '[.[].events[] | select(.kind=="device" and .source=="ascend" and .fields.health=="2" and .fields.id=="4")] | length == 1' <<<"$inspected"
check "the error code is a device event" jqs_is '[.[].events[] | select(.kind=="device" and .fields.error_code=="0x80E01801")] | length == 1' <<<"$inspected"
check "the lost NPU is a device event" jqs_is '[.[].events[] | select(.kind=="device" and .fields.state=="lost" and .fields.id=="5")] | length == 1' <<<"$inspected"
check "the lost NPU reports up 0 afterwards" jqs_is '.[-1].metrics | map(select(.name=="gridnode_npu_up" and .labels.id=="5")) | .[0].value == 0' <<<"$inspected"

# --- who may use an NPU: a process DCMI reports on one, of a user not allowed, is terminated
bash -c 'trap "" TERM; while :; do sleep 0.1; done' &
VICTIM=$!
PIDS+=("$VICTIM")
trap 'kill -9 "$VICTIM" 2>/dev/null || true; cleanup' EXIT
{ grep -v '^process' "$FIXTURES/ascend/two_chips.scenario"; echo "process 1 $VICTIM 1073741824"; } >"$FAKE_DCMI_SCENARIO"
cat >"$WORK/policy.toml" <<'TOML'
[accelerator]
users = ["gridnode-test-nobody"]
action = "terminate"
grace = 0.5
interval = 1
TOML
printf '[agent]\ndrivers = ["ascend"]\n[control]\ngroup = "0"\n' >"$WORK/policy-agent.toml"
"$BIN/gridnoded" --socket "$WORK/p.sock" --state-dir "$WORK/pstate" --interval 0.2 \
  --ascend-library "$FAKE" --config "$WORK/policy-agent.toml" --policy "$WORK/policy.toml" 2>"$WORK/policy.log" &
PIDS+=($!)
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
wait_for "the intruder on NPU 5 is killed" 20 gone "$VICTIM"
check "the intruder on NPU 5 is gone" gone "$VICTIM"
check "journal line names the rule and the process" grep -q "accelerator.*$VICTIM" "$WORK/policy.log"
finish
