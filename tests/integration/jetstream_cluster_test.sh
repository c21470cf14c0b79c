#!/usr/bin/env bash
# A three-node NATS cluster on loopback (routes between them, JetStream on each), a stream and
# bucket with three replicas, two collectors, an agent streaming: one nats-server is killed with
# SIGKILL mid-stream and started again. Nothing acknowledged is lost: the exported archive holds
# every report of the node exactly once, without a hole.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/jetstream_lib.sh"

command -v nats-server >/dev/null || { echo "nats-server missing (./gridnode.sh deps)"; exit 1; }
COL=$BIN/gridnode-collector

declare -a CPORT RPORT NPID
for i in 0 1 2; do
  CPORT[$i]=$(free_port)
  RPORT[$i]=$(free_port)
done
ROUTES="nats://127.0.0.1:${RPORT[0]},nats://127.0.0.1:${RPORT[1]},nats://127.0.0.1:${RPORT[2]}"
start_nats() {  # start_nats I
  local i=$1
  nats-server -js -sd "$WORK/nats$i" -a 127.0.0.1 -p "${CPORT[$i]}" -n "n$i" \
    --cluster_name gridnode-test --cluster "nats://127.0.0.1:${RPORT[$i]}" --routes "$ROUTES" \
    2>>"$WORK/nats$i.log" &
  NPID[$i]=$!
  PIDS+=($!)
}
for i in 0 1 2; do start_nats $i; done
NATS="nats://127.0.0.1:${CPORT[0]},nats://127.0.0.1:${CPORT[1]},nats://127.0.0.1:${CPORT[2]}"
for i in 0 1 2; do
  wait_for "nats-server $i" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/${CPORT[$i]}" ||
    { tail -n 20 "$WORK/nats$i.log" | sed 's/^/  nats: /' >&2; exit 1; }
done

setup_failover_agent
start_collector() {  # start_collector PORT
  "$COL" serve --listen "127.0.0.1:$1" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$NATS" --replicas 3 --max-bytes 268435456 \
    2>>"$WORK/collector-$1.log" &
  PIDS+=($!)
}
# The cluster elects its JetStream leader after a few seconds: the first collector retries until
# it can create the stream.
for _ in $(seq 40); do
  "$COL" serve --listen "127.0.0.1:$PORT_A" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$NATS" --replicas 3 --max-bytes 268435456 \
    2>>"$WORK/collector-$PORT_A.log" &
  pid=$!
  if wait_for "collector A listening" 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_A"; then
    PIDS+=("$pid")
    break
  fi
  wait "$pid" 2>/dev/null || true
  sleep 0.5
done
start_collector "$PORT_B"
wait_for "collector B listening" 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_B"
"$BIN/gridnoded" --config "$WORK/agent.toml" --state-dir "$STATE" --socket "$WORK/a.sock" \
  --sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc" \
  2>>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "agent socket" 10 "${CTL[@]}" status
wait_for "first acknowledgements" 30 acked_above 10

# What a timed-out wait shows (the leader elections of a loaded machine have taken a minute).
show_logs() {
  tail -n 15 "$WORK"/collector-*.log "$WORK/agent.log" | sed 's/^/  /'
  exit 1
}
# One nats-server dies mid-stream, and comes back.
before=$(acked)
kill -9 "${NPID[1]}"
wait "${NPID[1]}" 2>/dev/null || true
wait_for "acknowledgements go on with two of three servers" 90 acked_above "$((before + 20))" || show_logs
check "with one nats-server killed, reports are still acknowledged ($before -> $(acked))" acked_above "$((before + 20))"
start_nats 1
before=$(acked)
wait_for "acknowledgements go on after it came back" 90 acked_above "$((before + 20))" || show_logs

last=$(acked)  # what the collectors acknowledged must be in the stream
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
check_export_drains "$NATS"
reports() { jq -r 'select(.type == "report" and .node == "node-1") | .seq' "$WORK/archive.jsonl"; }
n=$(reports | wc -l)
unique=$(reports | sort -n | uniq | wc -l)
first_missing=$(reports | sort -n | awk 'NR != $1 {print NR; exit}')
max=$(reports | sort -n | tail -1)
check "cluster: every report exactly once ($n lines, $unique distinct)" [ "$n" -eq "$unique" ]
check "cluster: no report missing from 1 (${first_missing:-none})" [ -z "$first_missing" ]
check "cluster: up to the agent's last acknowledged report ($max, agent at $last)" [ "${max:-0}" -ge "$last" ]

finish
