#!/usr/bin/env bash
# The accelerator rule on the daemon's real path: gridnoded loads the fake libnvidia-ml.so.1
# (through dlopen, as it would NVIDIA's), whose process list names a process this test started;
# the policy allows only another user, with action terminate. The agent must send SIGTERM, which
# the process ignores, then SIGKILL after the grace period, and say so in its events.
source "$(dirname "$0")/lib.sh"

[ -f "${GRIDNODE_FAKE_NVML:-}" ] || { echo "fake libnvidia-ml.so.1 not built: $GRIDNODE_FAKE_NVML"; exit 1; }
export FAKE_NVML_SCENARIO=$WORK/scenario
CTL=("$BIN/gridnodectl" --socket "$WORK/a.sock")

# The real /proc (no --procfs-root): the rule reads the intruder's owner there.
# The intruder: ignores SIGTERM, so only SIGKILL ends it.
bash -c 'trap "" TERM; while :; do sleep 0.1; done' &
VICTIM=$!
PIDS+=("$VICTIM")
trap 'kill -9 "$VICTIM" 2>/dev/null || true; cleanup' EXIT  # cleanup's SIGTERM would not end it
# A bystander on no GPU: must survive.
sleep 300 &
BYSTANDER=$!
PIDS+=("$BYSTANDER")
{ grep -v '^process' "$FIXTURES/nvml/two_gpus.scenario"; echo "process 1 $VICTIM 1073741824"; } \
  >"$FAKE_NVML_SCENARIO"
cat >"$WORK/policy.toml" <<'TOML'
[accelerator]
users = ["gridnode-test-nobody"]
action = "terminate"
grace = 0.5
interval = 1
TOML

"$BIN/gridnoded" --socket "$WORK/a.sock" --state-dir "$WORK/state" --interval 0.2 \
  --sysfs-root "$FIXTURES/hwmon/coretemp/sys" --nvml-library "$GRIDNODE_FAKE_NVML" --policy "$WORK/policy.toml" 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "agent socket" 10 "${CTL[@]}" status

# Dead, or a zombie waiting for this shell: either way no longer running.
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
wait_for "the intruder is killed" 20 gone "$VICTIM"
check "the intruder on GPU 1 is gone" gone "$VICTIM"
status=0
wait "$VICTIM" 2>/dev/null || status=$?
check "it ended by SIGKILL, after ignoring SIGTERM (exit status $status)" [ "$status" -eq $((128 + 9)) ]
check "the bystander, on no GPU, still runs" kill -0 "$BYSTANDER"

events=$("${CTL[@]}" events --json)
check "events: SIGTERM sent to pid $VICTIM" jq_is \
  "[.. | objects | select(.rule? == \"accelerator\" and .result? == \"SIGTERM sent\" and (.subject | startswith(\"pid $VICTIM \")))] | length >= 1" <<<"$events"
check "events: then killed with SIGKILL after the grace" jq_is \
  "[.. | objects | select(.rule? == \"accelerator\" and (.result? // \"\" | startswith(\"killed: SIGKILL\")))] | length >= 1" <<<"$events"
check "journal line names the rule and the process" grep -q "accelerator.*$VICTIM" "$WORK/agent.log"
finish
