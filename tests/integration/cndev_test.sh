#!/usr/bin/env bash
# Cambricon MLUs end to end with the real programs: gridnoded loads the fake libcndev.so
# (tests/fakes/fake_cndev.c) through --cndev-library; --once prints mlu-exporter's names, the
# daemon answers `gridnodectl accelerators`, a policy cap_power on an mlu_ metric is refused at
# load, and an MLU in problem reaches the signed report as a device event.
source "$(dirname "$0")/lib.sh"

FAKE=${GRIDNODE_FAKE_CNDEV:-$BIN/../fakes/cndev/libcndev.so}
[ -f "$FAKE" ] || { echo "no fake CNDev at $FAKE"; exit 1; }
export FAKE_CNDEV_SCENARIO=$WORK/scenario
SOCK=$WORK/c.sock
PROC=$WORK/proc
mkdir -p "$PROC/4242" "$PROC/sys/kernel/random"
cp "$FIXTURES/procfs/basic/proc/sys/kernel/random/boot_id" "$PROC/sys/kernel/random/boot_id"
printf 'Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n' >"$PROC/4242/status"
printf '0::/slurm/job_9\n' >"$PROC/4242/cgroup"
printf '[agent]\ndrivers = ["cndev", "procfs"]\n[control]\ngroup = "0"\n' >"$WORK/agent.toml"
ROOTS=(--procfs-root "$PROC" --cndev-library "$FAKE" --config "$WORK/agent.toml")
cp "$FIXTURES/cndev/two_mlus.scenario" "$FAKE_CNDEV_SCENARIO"

out=$("$BIN/gridnoded" "${ROOTS[@]}" --once)
check "once: cndev driver up" grep -q '^gridnode_driver_up{driver="cndev"} 1$' <<<"$out"
check "once: machine_mlu_nums" grep -q '^machine_mlu_nums 2$' <<<"$out"
check "once: mlu-exporter names and labels" grep -q '^mlu_temperature{mlu="0",model="MLU370-X8",sn="2b1a00c4",uuid="30000000-0000-0000-0000-000000000aaa"} 52$' <<<"$out"
check "once: memory in bytes" grep -q '^mlu_memory_used{mlu="1",.*} 536870912$' <<<"$out"
check "once: node summary for cambricon" grep -q '^gridnode_accelerators{vendor="cambricon"} 2$' <<<"$out"
out=$("$BIN/gridnoded" --procfs-root "$PROC" --config "$WORK/agent.toml" \
  --cndev-library "$WORK/nowhere/libcndev.so" --once --json)
check "no library: cndev absent" jq_is '.status.drivers[] | select(.name=="cndev") | .state == "absent"' <<<"$out"

cat >"$WORK/cap.toml" <<'TOML'
[[limit]]
name = "mlu-hot"
metric = "mlu_chip_temperature"
above = 90
action = "cap_power"
power_limit = 200
TOML
check "cap_power on mlu_ refused at load" bash -c '! "$1" policy check "$2" >"$2.out" 2>&1; grep -q "Cambricon MLU metric" "$2.out"' _ "$BIN/gridnodectl" "$WORK/cap.toml"

"$BIN/gridnoded" "${ROOTS[@]}" --socket "$SOCK" --interval 0.2 --state-dir "$WORK/state" \
  2>>"$WORK/agent.log" &
PIDS+=($!)
wait_for "first sweep" 10 bash -c '[ "$("$1" --socket "$2" status --json | jq -r ".rounds >= 1")" = true ]' _ "$BIN/gridnodectl" "$SOCK"
acc=$("$BIN/gridnodectl" --socket "$SOCK" accelerators)
echo "$acc"
check "accelerators: a row per MLU" grep -Eq "^mlu0 +MLU370-X8 +52 °C +210 W +88 % +40000/49152 MiB +1 +ok" <<<"$acc"
check "accelerators: the idle MLU" grep -Eq "^mlu1 +MLU370-X8 +48 °C +75 W +0 % +512/49152 MiB +0 +ok" <<<"$acc"

RSTATE=$WORK/rstate
"$BIN/gridnoded" enroll --node-id node-mlu --state-dir "$RSTATE" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=test-grid-ca -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl x509 -req -in "$RSTATE/node.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -out "$RSTATE/node.crt" 2>/dev/null
{ cat "$FIXTURES/cndev/two_mlus.scenario"; printf 'problem 1 1\n'; } >"$FAKE_CNDEV_SCENARIO"
"$BIN/gridnoded" "${ROOTS[@]}" --state-dir "$RSTATE" --interval 0.05 --once \
  --report "$WORK/r.gnr" --reports 3 >/dev/null
inspected=$("$BIN/gridnode-collector" inspect --cert "$RSTATE/node.crt" "$WORK/r.gnr")
jqs_is() { [ "$(jq -rs "$1")" = true ]; }
check "reports verified" jqs_is 'all(.verified)' <<<"$inspected"
check "the MLU in problem is a device event" jqs_is '[.[].events[] | select(.kind=="device" and .source=="cndev" and .fields.state=="lost" and .fields.mlu=="1")] | length == 1' <<<"$inspected"
finish
