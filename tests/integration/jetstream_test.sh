#!/usr/bin/env bash
# Collectors behind NATS JetStream, with real processes on loopback: a nats-server with its own
# store, two collectors publishing into one stream, an agent failing over between them while they
# are killed with SIGKILL, an exporter killed too. Afterwards the stream holds every report of the
# node exactly once, the exported archive equals the stream, and a collector started with other
# stream settings refuses to start and names the setting.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/jetstream_lib.sh"

command -v nats-server >/dev/null || { echo "nats-server missing (./gridnode.sh deps)"; exit 1; }
COL=$BIN/gridnode-collector

# nats-server picks its ports (-1) and writes them to a file: no race with other tests.
mkdir "$WORK/nats"
nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p -1 -m -1 --ports_file_dir "$WORK/nats" \
  2>"$WORK/nats/log" &
NATS_PID=$!
PIDS+=("$NATS_PID")
wait_for "nats-server ports" 10 bash -c "ls '$WORK'/nats/*.ports"
PORTS_FILE=$(ls "$WORK"/nats/*.ports)
wait_for "nats-server ports written" 10 jq -e '.nats[0]' "$PORTS_FILE"
NATS=$(jq -r '.nats[0]' "$PORTS_FILE")
MON=$(jq -r '.monitoring[0]' "$PORTS_FILE")
stream_msgs() { curl -fsS "$MON/jsz?streams=true" | jq '[.account_details[].stream_detail[] | select(.name == "GRIDNODE_REPORTS") | .state.messages] | add // 0'; }

setup_failover_agent
ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")

declare -A COLLECTOR
start_collector() {  # start_collector A|B [extra options]
  local name=$1 port
  shift
  port=$([ "$name" = A ] && echo "$PORT_A" || echo "$PORT_B")
  "$COL" serve --listen "127.0.0.1:$port" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$NATS" --max-bytes 268435456 "$@" 2>>"$WORK/collector-$name.log" &
  COLLECTOR[$name]=$!
  PIDS+=($!)
  wait_for "collector $name listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
}
connected_to() { status | jq -r '.uplink.connected_to // ""'; }

# An exporter started before any collector made the stream waits for it.
start_export() {
  "$COL" export --from "$NATS" --sink "$WORK/archive.jsonl" 2>>"$WORK/export.log" &
  EXPORT=$!
  PIDS+=("$EXPORT")
}
start_export
wait_for "the exporter waits for the stream" 10 grep -q "waiting for the stream" "$WORK/export.log"

start_collector A
start_collector B
start_agent
wait_for "first acknowledgements" 20 acked_above 10
check "agent streams to collector A" [ "$(connected_to)" = "127.0.0.1:$PORT_A" ]
check "stream created, messages in it" [ "$(stream_msgs)" -gt 10 ]

wait_for "the exporter started once the stream was there" 30 grep -q "export: started" "$WORK/export.log"
check "an exporter started before the stream waited for it, then started" \
  grep -q "export: started" "$WORK/export.log"
# Its consumer deleted under it (an operator, or a consumer lost with its servers): made again
# after the archive's position, nothing lost or written twice (checked below).
python3 "$SRC/tests/integration/nats_stream.py" "$NATS" GRIDNODE_REPORTS --delete-consumer gridnode-export
wait_for "the exporter made its consumer again" 30 grep -q "consumer lost, made again" "$WORK/export.log"
check "a running exporter whose consumer was deleted made it again" \
  grep -q "consumer lost, made again" "$WORK/export.log"
check "and is still running" kill -0 "$EXPORT"
# It runs alongside and is killed with SIGKILL now and then.

# --- failover: kill -9 the collector the agent streams to, several times, at random moments
for round in 1 2 3 4; do
  sleep "0.$((RANDOM % 5 + 1))"
  to=$(connected_to)
  victim=$([ "$to" = "127.0.0.1:$PORT_A" ] && echo A || echo B)
  other=$([ "$victim" = A ] && echo B || echo A)
  before=$(acked)
  kill9 "${COLLECTOR[$victim]}"
  [ $((round % 2)) -eq 0 ] && { kill9 "$EXPORT"; start_export; }
  other_port=$([ "$other" = A ] && echo "$PORT_A" || echo "$PORT_B")
  wait_for "round $round: the agent fails over to $other" 30 bash -c \
    "[ \"\$('${CTL[0]}' --socket '$WORK/a.sock' status --json | jq -r .uplink.connected_to)\" = 127.0.0.1:$other_port ]"
  check "round $round: the agent failed over from $victim to $other" [ "$(connected_to)" = "127.0.0.1:$other_port" ]
  wait_for "round $round: acknowledgements go on through $other" 30 acked_above "$((before + 5))"
  start_collector "$victim"
done
check "a collector that took a node over logged where it resumed" \
  grep -q "node connected.*have=[1-9]" "$WORK/collector-A.log" "$WORK/collector-B.log"

# --- stop everything cleanly once acknowledged, then read the stream through the archive
last=$(acked)  # what the collectors acknowledged must be in the stream
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
wait_for "everything acknowledged was exported" 30 bash -c \
  "[ \$(jq -r 'select(.type == \"report\") | .seq' '$WORK/archive.jsonl' | sort -n | tail -1) -ge $last ]"
kill -TERM "$EXPORT"
wait "$EXPORT" 2>/dev/null || true
"$COL" export --from "$NATS" --sink "$WORK/archive.jsonl" --drain 2>>"$WORK/export.log"
reports() { jq -r 'select(.type == "report" and .node == "node-1") | .seq' "$1"; }
n=$(reports "$WORK/archive.jsonl" | wc -l)
unique=$(reports "$WORK/archive.jsonl" | sort -n | uniq | wc -l)
first_missing=$(reports "$WORK/archive.jsonl" | sort -n | awk 'NR != $1 {print NR; exit}')
max=$(reports "$WORK/archive.jsonl" | sort -n | tail -1)
check "archive: every report exactly once ($n lines, $unique distinct)" [ "$n" -eq "$unique" ]
check "archive: no report missing from 1 (${first_missing:-none})" [ -z "$first_missing" ]
check "archive: up to the agent's last acknowledged report ($max, agent at $last)" [ "$max" -ge "$last" ]
lines=$(wc -l <"$WORK/archive.jsonl")
msgs=$(stream_msgs)
check "archive equals the stream: $lines lines, $msgs messages (republished reports deduplicated)" [ "$lines" -eq "$msgs" ]
check "archive: whole JSON lines, values decoded after every takeover" \
  [ "$(jq -r 'select(.type == "report" and (.metrics | length) == 0) | .seq' "$WORK/archive.jsonl" | wc -l)" -eq 0 ]
"$COL" export --from "$NATS" --sink "$WORK/archive.jsonl" --drain 2>>"$WORK/export.log"
check "export again: nothing written twice" [ "$(wc -l <"$WORK/archive.jsonl")" -eq "$lines" ]

# --- a stream created with other settings: an error that names the setting
for name in A B; do kill -TERM "${COLLECTOR[$name]}"; wait "${COLLECTOR[$name]}" 2>/dev/null || true; done
out=$("$COL" serve --listen "127.0.0.1:$PORT_A" --ca "$P/ca.crt" --cert "$P/collector.crt" \
  --key "$P/collector.key" --sink "$NATS" --max-bytes 268435456 --max-age 3600 2>&1) && rc=0 || rc=$?
check "other max_age: refused with status 2 ($rc)" [ "$rc" -eq 2 ]
check "other max_age: the error names the setting ($out)" grep -q "max_age=604800s.*wants 3600s" <<<"$out"
out=$("$COL" serve --listen "127.0.0.1:$PORT_A" --ca "$P/ca.crt" --cert "$P/collector.crt" \
  --key "$P/collector.key" --sink "$NATS" --max-bytes 268435456 --duplicate-window 30 2>&1) && rc=0 || rc=$?
check "other duplicate window: the error names it" grep -q "duplicates=600s" <<<"$out"

finish
