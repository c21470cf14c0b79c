#!/usr/bin/env bash
# Accelerators end to end with the real programs: gridnoded loads the fake libnvidia-ml.so.1
# (tests/fakes/fake_nvml.c) through --nvml-library and reads an amdgpu fixture tree; --once
# prints dcgm-exporter's and AMD's exporter's names, the daemon answers `gridnodectl gpus` and
# `sensors`, and an XID and a lost GPU reach the signed report as device events.
source "$(dirname "$0")/lib.sh"

FAKE=${GRIDNODE_FAKE_NVML:-$BIN/../fakes/nvml/libnvidia-ml.so.1}
[ -f "$FAKE" ] || { echo "no fake NVML at $FAKE"; exit 1; }
export FAKE_NVML_SCENARIO=$WORK/scenario
SOCK=$WORK/c.sock
PROC=$WORK/proc
mkdir -p "$PROC/4242" "$PROC/sys/kernel/random"
cp "$FIXTURES/procfs/basic/proc/sys/kernel/random/boot_id" "$PROC/sys/kernel/random/boot_id"
printf 'Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n' >"$PROC/4242/status"
printf '0::/slurm/uid_1000/job_77\n' >"$PROC/4242/cgroup"
ROOTS=(--sysfs-root "$FIXTURES/amdgpu/basic/sys" --procfs-root "$PROC" --nvml-library "$FAKE")
cp "$FIXTURES/nvml/two_gpus.scenario" "$FAKE_NVML_SCENARIO"

# --- --once: one sweep, Prometheus text
out=$("$BIN/gridnoded" "${ROOTS[@]}" --once)
check "once: nvml driver up" grep -q '^gridnode_driver_up{driver="nvml"} 1$' <<<"$out"
check "once: amdgpu driver up" grep -q '^gridnode_driver_up{driver="amdgpu"} 1$' <<<"$out"
check "once: GPU temperature per GPU" bash -c '[ "$(grep -c "^DCGM_FI_DEV_GPU_TEMP{" <<<"$1")" -eq 2 ]' _ "$out"
check "once: power in W, exact" grep -q '^DCGM_FI_DEV_POWER_USAGE{.*gpu="0".*} 312.512$' <<<"$out"
check "once: dcgm-exporter labels" grep -q 'DCGM_FI_DEV_FB_USED{DCGM_FI_DRIVER_VERSION="535.104.05",Hostname="[^"]*",UUID="GPU-5a7c2b1e-0b8f-4c41-9f0a-1d2e3f405060",device="nvidia0",gpu="0",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:17:00.0"} 40960' <<<"$out"
check "once: process with uid and cgroup" grep -q '^gridnode_gpu_process_memory_used_bytes{.*cgroup="/slurm/uid_1000/job_77",gpu="0",pid="4242",uid="1000"} 42949672960$' <<<"$out"
check "once: AMD activity" grep -q '^gpu_gfx_activity{card_model="AMD Instinct MI210",gpu_id="0",.*} 12$' <<<"$out"
check "once: node summary per vendor" bash -c 'grep -q "^gridnode_accelerators{vendor=\"nvidia\"} 2$" <<<"$1" && grep -q "^gridnode_accelerators{vendor=\"amd\"} 2$" <<<"$1"' _ "$out"
check "once: one HELP per family" bash -c '[ -z "$(grep "^# HELP" <<<"$1" | sort | uniq -d)" ]' _ "$out"
if command -v promtool >/dev/null; then
  # dcgm-exporter's names are what dashboards use: its metric names (counters without _total,
  # DCGM_FI_DEV_PCIE_REPLAY_COUNTER) and its camelCase labels (modelName, UUID, Hostname, which
  # gridnode_gpu_up carries too, to join on) are inherited, as promtool_test inherits
  # node_exporter's node_memory_ names. Anything else, and any parse error, fails.
  promtool check metrics <<<"$out" >"$WORK/lint.txt" 2>&1 || true
  check "once: promtool finds nothing of ours" bash -c '! grep -vE "^DCGM_FI_DEV_[A-Z_]+ |label names should be written in .snake_case. not .camelCase.$" "$1"' _ "$WORK/lint.txt"
fi

# --- no library: the driver is absent, everything else goes on
out=$("$BIN/gridnoded" --sysfs-root "$FIXTURES/amdgpu/basic/sys" --procfs-root "$PROC" \
  --nvml-library "$WORK/nowhere/libnvidia-ml.so.1" --once --json)
check "no library: nvml absent" jq_is '.status.drivers[] | select(.name=="nvml") | .state == "absent"' <<<"$out"
check "no library: amdgpu still up" jq_is '.status.drivers[] | select(.name=="amdgpu") | .state == "up"' <<<"$out"

# --- the nvml driver's section and flags, and node_exporter's collector switches
printf '[nvml]\nlibrary = "%s"\ncall_timeout = 0.5\n' "$WORK/nowhere/libnvidia-ml.so.1" >"$WORK/nvml.toml"
out=$("$BIN/gridnoded" --sysfs-root "$FIXTURES/amdgpu/basic/sys" --procfs-root "$PROC" \
  --config "$WORK/nvml.toml" --once --json)
check "[nvml] library: read by the driver" jq_is '.status.drivers[] | select(.name=="nvml") | .state == "absent"' <<<"$out"
out=$("$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/nvml.toml" --once)
check "--nvml-library wins over [nvml] library" grep -q '^gridnode_driver_up{driver="nvml"} 1$' <<<"$out"
printf '[nvml]\ncall_timeout = "soon"\n' >"$WORK/bad-nvml.toml"
check "[nvml] bad value: refused at start" not_ok "$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/bad-nvml.toml" --once
check "[nvml] bad value: file, line and key named" bash -c '"$@" 2>&1 | grep -q "bad-nvml.toml:2: nvml.call_timeout: must be a number of seconds"' _ "$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/bad-nvml.toml" --once
out=$("$BIN/gridnoded" "${ROOTS[@]}" --no-collector.nvml --once)
check "--no-collector.nvml: no nvml driver" bash -c '! grep -q "driver=\"nvml\"" <<<"$1" && grep -q "^gridnode_driver_up{driver=\"amdgpu\"} 1$" <<<"$1"' _ "$out"
printf '[agent]\ndrivers = ["amdgpu"]\n' >"$WORK/amd-only.toml"
out=$("$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/amd-only.toml" --collector.nvml --once)
check "--collector.nvml: added to agent.drivers" bash -c '[ "$(grep -c "^gridnode_driver_up{" <<<"$1")" -eq 2 ] && grep -q "^gridnode_driver_up{driver=\"nvml\"} 1$" <<<"$1"' _ "$out"
check "--no-collector of every driver listed: refused" not_ok "$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/amd-only.toml" --no-collector.amdgpu --once

# --- version mismatch: down, with the reason
printf 'init_error 18\n' >"$FAKE_NVML_SCENARIO"
out=$("$BIN/gridnoded" "${ROOTS[@]}" --once --json 2>"$WORK/mismatch.log")
check "mismatch: nvml down" jq_is '.status.drivers[] | select(.name=="nvml") | .state == "down"' <<<"$out"
check "mismatch: one log line with the reason" bash -c '[ "$(grep -c "different driver releases" "$1")" -eq 1 ]' _ "$WORK/mismatch.log"

# --- the daemon and the technician's view
cp "$FIXTURES/nvml/two_gpus.scenario" "$FAKE_NVML_SCENARIO"
printf '[control]\ngroup = "0"\n' >"$WORK/agent.toml"
"$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/agent.toml" --socket "$SOCK" --interval 0.2 \
  --state-dir "$WORK/state" 2>>"$WORK/agent.log" &
PIDS+=($!)
wait_for "first sweep" 10 bash -c '[ "$("$1" --socket "$2" status --json | jq -r ".rounds >= 1")" = true ]' _ "$BIN/gridnodectl" "$SOCK"
gpus=$("$BIN/gridnodectl" --socket "$SOCK" gpus)
echo "$gpus"
check "gpus: a row per NVIDIA GPU, first" bash -c 'sed -n 2p <<<"$1" | grep -Eq "^0 +NVIDIA H100 80GB HBM3 +4[12] °C +(312.512|320)/700 W +97 % +40960/81559 MiB +1 +ok +00000000:17:00.0$"' _ "$gpus"
check "gpus: the idle GPU" grep -Eq "^1 +NVIDIA H100 80GB HBM3 +4[12] °C +69.875/700 W +0 % +4/81559 MiB +0 +ok" <<<"$gpus"
check "gpus: AMD cards too" grep -q "^amd0 *AMD Instinct MI210 *52 °C" <<<"$gpus"
check "gpus: the process line" grep -q "gpu 0: pid 4242 uid 1000 40960 MiB cgroup /slurm/uid_1000/job_77" <<<"$gpus"
json=$("$BIN/gridnodectl" --socket "$SOCK" gpus --json)
check "gpus --json: four accelerators" jq_is 'length == 4' <<<"$json"
check "gpus --json: health and uuid" jq_is '.[1].health == "ok" and .[1].uuid == "GPU-6b8d3c2f-1c90-4d52-a01b-2e3f40516171"' <<<"$json"
check "gpus --json: process owner" jq_is '.[0].processes[0].uid == "1000" and .[0].processes[0].pid == 4242' <<<"$json"
sensors=$("$BIN/gridnodectl" --socket "$SOCK" sensors)
check "sensors: GPUs as chips" grep -q "^nvidia3 (NVIDIA H100 80GB HBM3)" <<<"$sensors"
check "sensors: AMD cards as chips" grep -q "^card0 (AMD Instinct MI210)" <<<"$sensors"
metrics=$("$BIN/gridnodectl" --socket "$SOCK" metrics)
check "metrics: DCGM names" grep -q "^DCGM_FI_DEV_GPU_UTIL{" <<<"$metrics"

# --- an XID and a lost GPU reach the signed report
RSTATE=$WORK/rstate
"$BIN/gridnoded" enroll --node-id node-gpu --state-dir "$RSTATE" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=test-grid-ca -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl x509 -req -in "$RSTATE/node.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -out "$RSTATE/node.crt" 2>/dev/null
{ cat "$FIXTURES/nvml/two_gpus.scenario"; printf 'xid 0 1 79\nlost 1 2\n'; } >"$FAKE_NVML_SCENARIO"
"$BIN/gridnoded" "${ROOTS[@]}" --config "$WORK/agent.toml" --state-dir "$RSTATE" \
  --interval 0.05 --once --report "$WORK/r.gnr" --reports 4 >/dev/null
inspected=$("$BIN/gridnode-collector" inspect --cert "$RSTATE/node.crt" "$WORK/r.gnr")
jqs_is() { [ "$(jq -rs "$1")" = true ]; }
check "reports verified" jqs_is 'all(.verified)' <<<"$inspected"
check "XID 79 is a device event of a signed report" jqs_is '[.[].events[] | select(.kind=="device" and .source=="nvml" and .fields.xid=="79" and .fields.gpu=="0")] | length == 1' <<<"$inspected"
check "the lost GPU is a device event" jqs_is '[.[].events[] | select(.kind=="device" and .fields.state=="lost" and .fields.gpu=="1")] | length == 1' <<<"$inspected"
check "the lost GPU reports up 0 afterwards" jqs_is '.[-1].metrics | map(select(.name=="gridnode_gpu_up" and .labels.gpu=="1")) | .[0].value == 0' <<<"$inspected"
finish
