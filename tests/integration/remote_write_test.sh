#!/usr/bin/env bash
# Prometheus remote_write from `gridnode-collector serve` into a real VictoriaMetrics 1.79 and a
# real Prometheus 2.42 (--web.enable-remote-write-receiver), both with basic auth, started here
# on loopback: the fixture's values come back exactly, at their sampling time, with the node's
# labels; after kill -9 of the collector and of both databases mid-stream, and a database that
# hangs, every report of the sink is in each database exactly once per series (VictoriaMetrics
# with -dedup.minScrapeInterval=1ms keeps one of what the re-send window sends again); a wrong
# password is a logged refusal, the data waits, and it is all delivered once fixed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/jetstream_lib.sh"
AUTH=(-u grid:s3cret)
source "$(dirname "$0")/remote_write_lib.sh"

COL=$BIN/gridnode-collector
# node-1's PKI, state and agent.toml (streaming to $PORT_A; $PORT_B is never started), with a
# rack label beside its region and site.
setup_failover_agent
sed -i 's/^site = "dc1"$/&\nrack = "r12"/' "$WORK/agent.toml"
PORT=$PORT_A
SINK=$WORK/sink.jsonl
ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")

start_vm
start_prom

# --- the collector: three targets, one with a wrong password (and its own job label)
printf 's3cret\n' >"$WORK/good.pw"
printf 'wrong\n' >"$WORK/bad.pw"
cat >"$WORK/rw.toml" <<TOML
[[remote_write]]
name = "vm"
url = "http://127.0.0.1:$VMPORT/api/v1/write"
username = "grid"
password_file = "$WORK/good.pw"

[[remote_write]]
name = "prom"
url = "http://127.0.0.1:$PPORT/api/v1/write"
username = "grid"
password_file = "$WORK/good.pw"

# The control: the same without the re-send window (reported, not checked: what a kill -9 of
# VictoriaMetrics loses depends on when it last flushed).
[[remote_write]]
name = "vm-nowindow"
url = "http://127.0.0.1:$VMPORT/api/v1/write"
username = "grid"
password_file = "$WORK/good.pw"
job = "gridnode-nowindow"
resend_window = 0

[[remote_write]]
name = "vm-fixed"
url = "http://127.0.0.1:$VMPORT/api/v1/write"
username = "grid"
password_file = "$WORK/bad.pw"
job = "gridnode-fixed"
timeout = 3
TOML
start_collector() {
  "$COL" serve --listen "127.0.0.1:$PORT" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$SINK" --remote-write-config "$WORK/rw.toml" \
    2>>"$WORK/collector.log" &
  COLLECTOR=$!
  PIDS+=("$COLLECTOR")
  wait_for "collector listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"
}
refuses_nats_sink() {
  local out rc=0
  out=$("$COL" serve --ca "$P/ca.crt" --cert "$P/collector.crt" --key "$P/collector.key" \
    --sink nats://127.0.0.1:1 --remote-write http://127.0.0.1:1/api/v1/write 2>&1) || rc=$?
  [ "$rc" = 2 ] && grep -q 'export --from nats://127.0.0.1:1' <<<"$out"
}
check "serve refuses --remote-write with a nats:// sink, naming export" refuses_nats_sink
start_collector
start_agent

check_first_sample "$SINK" gridnode '.region == "east" and .site == "dc1" and .rack == "r12"'

# --- mid-stream: the collector killed twice, both databases killed, one hung for a while
sleep 1
kill9 "$COLLECTOR"
sleep 0.5
start_collector
sleep 1
kill9 "$VM"
kill9 "$PROM"
before=$(acked)
sleep 1
check "databases away: the agent's reports are still acknowledged" acked_above "$before"
start_vm
start_prom
sleep 1
kill -STOP "$VM"
before=$(acked)
sleep 2
check "a database that hangs: the agent's reports are still acknowledged" acked_above "$before"
kill9 "$VM"
start_vm
sleep 1
kill9 "$COLLECTOR"
start_collector
sleep 2
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true

wait_for "vm delivered the whole sink" 60 at_end "$SINK" vm
wait_for "prom delivered the whole sink" 60 at_end "$SINK" prom
check_delivered vm "$SINK" gridnode
wait_for "vm-nowindow delivered the whole sink" 60 at_end "$SINK" vm-nowindow || true
lost=$(comm -13 <(db_times vm 'node_load1{job="gridnode-nowindow"}') "$WORK/sink.times" | wc -l)
echo "# without the re-send window, VictoriaMetrics' kill -9 lost $lost of $(wc -l <"$WORK/sink.times") acknowledged reports (the control target)"
check_delivered prom "$SINK" gridnode
check "the collectors logged the database restarts as unreachable targets" \
  grep -q 'remote-write: target unreachable, trying again target=vm' "$WORK/collector.log"

# --- the wrong password: a logged refusal with the status; nothing delivered under its job
check "wrong password: an error naming the target and 401" \
  grep -q 'target refused our request; kept, tried again until fixed target=vm-fixed .*status=401' "$WORK/collector.log"
check "wrong password: its position did not move" [ "$(jq -r .offset "$SINK.rw-vm-fixed")" = 0 ]
printf 's3cret\n' >"$WORK/bad.pw"
kill -TERM "$COLLECTOR"
wait "$COLLECTOR" 2>/dev/null || true
start_collector
wait_for "vm-fixed delivered the whole sink once fixed" 60 at_end "$SINK" vm-fixed
check_delivered vm "$SINK" gridnode-fixed
if [ "$FAILS" -gt 0 ]; then
  grep 'remote-write' "$WORK/collector.log" | tail -n 20 | sed 's/^/  collector: /'
fi
finish
