#!/usr/bin/env bash
# The grid with real processes on loopback: three nats-servers in a cluster (stream and bucket
# with three replicas), three collectors each given all three servers, four agents each given all
# three collectors, the capacity view and an exporter. While the agents stream, each collector in
# turn is killed with SIGKILL and started again (the agents on it fail over), the exporter too,
# and one nats-server (with a collector killed meanwhile). Afterwards every node's reports 1..N
# are in the stream exactly once, without a gap record; the exported archive equals the stream,
# message id for message id; the capacity view lists every node fresh. Then two agent processes
# with one node's identity stream at once, one to each of two collectors: the bucket's
# stream's fence (Nats-Expected-Last-Subject-Sequence) keeps one chain, and the loser is refused
# with a reason in its log.
source "$(dirname "$0")/lib.sh"

command -v nats-server >/dev/null || { echo "nats-server missing (./gridnode.sh deps)"; exit 1; }
COL=$BIN/gridnode-collector
source "$(dirname "$0")/grid_lib.sh"

NODES=(node-1 node-2 node-3 node-4)
declare -A REGION=([node-1]=east [node-2]=east [node-3]=west [node-4]=west)
declare -A SITE=([node-1]=dc1 [node-2]=dc2 [node-3]=dc7 [node-4]=dc7)
GRID_ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")
FAKE=${GRIDNODE_FAKE_NVML:-$BIN/../fakes/nvml/libnvidia-ml.so.1}
# shellcheck disable=SC2034  # GRID_SCENARIO, GRID_ROOTS: read by grid_lib.sh
if [ -f "$FAKE" ]; then  # two GPUs per node (one busy), so that the capacity view lists them
  GRID_ROOTS+=(--nvml-library "$FAKE")
  for n in "${NODES[@]}"; do GRID_SCENARIO[$n]=$FIXTURES/nvml/two_gpus.scenario; done
fi
phase() { echo "# ${SECONDS}s: $*"; }
all_logs() { ls "$WORK"/*.log "$WORK"/node-*/agent.log 2>/dev/null; }
# wait_or_show "description" seconds command...: wait_for, and the logs when it times out.
wait_or_show() {
  wait_for "$@" && return 0
  # shellcheck disable=SC2046
  grid_show_log $(all_logs)
  return 1
}
acked_all() { local n; for n in "${NODES[@]}"; do printf '%s ' "$(grid_acked "$n")"; done; }
# every_node_above "A B C D": every agent acknowledged more than its number plus $2.
every_node_above() {
  local i=0 base n
  read -ra base <<<"$1"
  for n in "${NODES[@]}"; do
    grid_acked_above "$n" "$((base[i] + $2))" || return 1
    i=$((i + 1))
  done
}

grid_pki "${NODES[@]}" node-5
grid_nats_start_all
grid_collectors_start_all
for n in "${NODES[@]}"; do grid_agent_start "$n" "${REGION[$n]}" "${SITE[$n]}"; done
grid_capacity_start
start_export() {
  "$COL" export --from "$NATS_URLS" --sink "$WORK/archive.jsonl" 2>>"$WORK/export.log" &
  EXPORT=$!
  PIDS+=("$EXPORT")
}
start_export
wait_or_show "first acknowledgements of every node" 60 every_node_above "0 0 0 0" 10
check "every node streams (acked: $(acked_all))" every_node_above "0 0 0 0" 10

phase "collectors killed in turn"
# --- each collector in turn is killed with SIGKILL while nodes stream to it, then restarted
moved() { local c; c=$(grid_collector_of "$victim_node"); [ -n "$c" ] && [ "$c" != "$victim" ]; }
for round in 1 2 3; do
  victim_node=node-$round
  victim=$(grid_collector_of "$victim_node")
  if [ -z "$victim" ]; then  # between two connections: asked again
    connected() { [ -n "$(grid_collector_of "$victim_node")" ]; }
    wait_or_show "$victim_node connected" 30 connected
    victim=$(grid_collector_of "$victim_node")
  fi
  before=$(acked_all)
  grid_kill9 "${CPID[$victim]}"
  [ "$round" -eq 2 ] && { grid_kill9 "$EXPORT"; start_export; }
  wait_or_show "round $round: $victim_node fails over from collector $victim" 60 moved
  check "round $round: $victim_node failed over from collector $victim to $(grid_collector_of "$victim_node")" moved
  wait_or_show "round $round: every node goes on" 60 every_node_above "$before" 5
  check "round $round: every node's acknowledgements go on ($before-> $(acked_all))" every_node_above "$before" 5
  grid_collector_start "$victim"
done
check "a collector that took a node over logged where it resumed" \
  grep -q "node connected.*have=[1-9]" "$WORK"/collector*.log

phase "a nats-server killed"
# --- one nats-server dies mid-stream; a collector is killed while it is down; it comes back
before=$(acked_all)
grid_kill9 "${NPID[1]}"
wait_or_show "with nats-server 1 killed, every node goes on" 90 every_node_above "$before" 20
check "with nats-server 1 killed, every node's reports are acknowledged ($before-> $(acked_all))" \
  every_node_above "$before" 20
phase "nats-server 1 down: a collector killed"
victim=$(grid_collector_of node-4)
if [ -n "$victim" ]; then
  before=$(acked_all)
  grid_kill9 "${CPID[$victim]}"
  wait_or_show "node-4 fails over while a nats-server is down" 90 every_node_above "$before" 5
  check "a collector killed while a nats-server is down: every node goes on" every_node_above "$before" 5
  grid_collector_start "$victim"
fi
phase "nats-server 1 restarted"
grid_nats_start 1
before=$(acked_all)
wait_or_show "every node goes on after nats-server 1 came back" 90 every_node_above "$before" 20
check "nats-server 1 back: every node's acknowledgements go on" every_node_above "$before" 20

phase "capacity view"
# --- the capacity view: every node, fresh (its last report younger than three intervals)
fresh() {
  local n
  for n in "${NODES[@]}"; do
    curl -fsS "$CAP_URL/v1/nodes/$n" | jq -e '.stale == false' >/dev/null || return 1
  done
}
wait_or_show "every node fresh in the capacity view" 30 fresh
check "capacity: every node fresh ($(for n in "${NODES[@]}"; do curl -fsS "$CAP_URL/v1/nodes/$n" | jq -r '"\(.node) \(.age_seconds)s"'; done | paste -sd, -))" fresh
cap=$(curl -fsS "$CAP_URL/v1/capacity")
check "capacity: 4 nodes, none stale, per-region totals ($(jq -c '[.regions[] | {region, nodes}]' <<<"$cap"))" \
  jq_is '.total.nodes == 4 and .total.stale_nodes == 0 and ([.regions[] | select(.region == "east" or .region == "west") | .nodes] == [2, 2])' <<<"$cap"
if [ -f "$FAKE" ]; then
  check "capacity: every node listed with its idle GPU ($(jq -c '[.nodes[].node]' <<<"$cap"))" \
    jq_is '([.nodes[].node] | sort) == ["node-1","node-2","node-3","node-4"] and all(.nodes[]; .idle == 1)' <<<"$cap"
fi

phase "agents stopped"
# --- stop the agents once acknowledged; the exporter drains the stream
declare -A LAST
for n in "${NODES[@]}"; do
  LAST[$n]=$(grid_acked "$n")  # what the collectors acknowledged must be in the stream
  kill -TERM "${APID[$n]}"
  wait "${APID[$n]}" 2>/dev/null || true
done

phase "twins"
# --- two agents with one identity, one on collector 0, the other on collector 1
grid_agent_start node-5 east dc9 0
wait_or_show "node-5 streams" 30 grid_acked_above node-5 5
kill -TERM "${APID[node-5]}"
wait "${APID[node-5]}" 2>/dev/null || true
mkdir -p "$WORK/node-5b"
cp -a "$WORK/node-5/state" "$WORK/node-5b/state"
grid_agent_config node-5b east dc9 1
mv "$WORK/node-5/agent.log" "$WORK/node-5/agent-before.log"
# Both collectors are stopped (SIGSTOP) while the twins start and sample, then go on at once: each
# reads the chain at the same revision and gets a batch whose reports fork from the other's.
trap 'kill -CONT "${CPID[@]}" 2>/dev/null; cleanup' EXIT  # a stopped process ignores SIGTERM
kill -STOP "${CPID[0]}" "${CPID[1]}"
grid_agent_run node-5
grid_agent_run node-5b
sleep 1  # a few reports each (10 intervals), queued behind the stopped collectors
kill -CONT "${CPID[0]}" "${CPID[1]}"
refused() { grep -qE "rejected|already holds" "$WORK/node-5/agent.log" "$WORK/node-5b/agent.log"; }
wait_or_show "one of the twins refused" 60 refused
refused_one() { grep -qE "rejected|already holds" "$WORK/$1/agent.log"; }
winner=node-5
refused_one node-5 && winner=node-5b
w0=$(grid_acked "$winner")
wait_or_show "the winner $winner goes on" 60 grid_acked_above "$winner" $((w0 + 20))
check "twins: the winner $winner goes on ($w0 -> $(grid_acked "$winner"))" grid_acked_above "$winner" $((w0 + 20))
LAST[node-5]=$(grid_acked "$winner")
for n in node-5 node-5b; do
  kill -TERM "${APID[$n]}"
  wait "${APID[$n]}" 2>/dev/null || true
done

phase "export"
check "the exporter ran through it all" kill -0 "$EXPORT"
kill -0 "$EXPORT" 2>/dev/null || grid_show_log "$WORK/export.log"
kill -TERM "$EXPORT" 2>/dev/null || true
wait "$EXPORT" 2>/dev/null || true
check_export_drains "$NATS_URLS"
listed=no
for attempt in $(seq 10); do
  if python3 "$SRC/tests/integration/nats_stream.py" "$NATS_URLS" GRIDNODE_REPORTS >"$WORK/stream.tsv" 2>>"$WORK/stream.err"; then
    listed=yes
    break
  fi
  sleep 1
done
check "the stream's messages listed (attempt $attempt)" [ "$listed" = yes ]
[ "$listed" = yes ] || grid_show_log "$WORK/stream.err"

phase "checks"
# --- every node's reports exactly once, 1..N, no gap record; the archive equals the stream
# One pass over the archive (tens of MB): TYPE NODE SEQ|FROM TO DIGEST PREV VALUES VALUES-ERROR.
jq -r '[.type, .node, (.seq // .from_seq // 0), (.to_seq // 0), (.digest // "-"), (.prev // "-"),
        (.metrics // [] | length), (.values_error // "-")] | @tsv' "$WORK/archive.jsonl" \
  >"$WORK/archive.tsv"
reports() { awk -F'\t' -v n="$1" '$1 == "report" && $2 == n {print $3}' "$WORK/archive.tsv"; }
for n in "${NODES[@]}"; do
  total=$(reports "$n" | wc -l)
  unique=$(reports "$n" | sort -n | uniq | wc -l)
  first_missing=$(reports "$n" | sort -n | uniq | awk 'NR != $1 {print NR; exit}')
  max=$(reports "$n" | sort -n | tail -1)
  check "$n: every report exactly once ($total records, $unique distinct)" [ "$total" -eq "$unique" ]
  check "$n: none missing from 1 to $max (first missing: ${first_missing:-none})" [ -z "$first_missing" ]
  check "$n: up to the agent's last acknowledged report ($max, agent at ${LAST[$n]})" [ "${max:-0}" -ge "${LAST[$n]}" ]
done
check "no gap record" [ "$(awk -F'\t' '$1 == "gap"' "$WORK/archive.tsv" | wc -l)" -eq 0 ]
awk -F'\t' '$1 == "report" {print $2 ":" $3 ":" $5; next}
             $1 == "gap" {print $2 ":gap:" $3 "-" $4; next}
             $1 == "catalog" {print $2 ":catalog:" $5; next} {print "?"}' \
  "$WORK/archive.tsv" >"$WORK/archive.ids"
cut -f3 "$WORK/stream.tsv" >"$WORK/stream.ids"
check "archive equals the stream: $(wc -l <"$WORK/archive.ids") records, $(wc -l <"$WORK/stream.ids") messages, same ids in the same order" \
  cmp -s "$WORK/archive.ids" "$WORK/stream.ids"
cmp -s "$WORK/archive.ids" "$WORK/stream.ids" || diff "$WORK/stream.ids" "$WORK/archive.ids" | head -5 || true
undecoded=$(awk -F'\t' '$1 == "report" && $7 == 0 {print $2 " " $3 " (" $8 ")"}' "$WORK/archive.tsv")
n_undecoded=$(grep -c . <<<"$undecoded" || true)
check "archive: values decoded after every takeover ($n_undecoded without${undecoded:+, first: $(head -1 <<<"$undecoded")})" \
  [ -z "$undecoded" ]

# --- the twins: one chain in the stream, the loser refused with a reason
loser=
for n in node-5 node-5b; do
  if refused_one "$n"; then loser+="$n "; fi
done
check "twins: exactly one of them is refused (${loser:-none})" [ "$(wc -w <<<"$loser")" -eq 1 ]
grep -hE "rejected|already holds" "$WORK/node-5/agent.log" "$WORK/node-5b/agent.log" | head -2 | sed 's/^/  loser: /'
check "twins: a collector saw the chain moved on by the other" \
  grep -q "node-5 moved on by another collector" "$WORK"/collector*.log
check "twins: node-5's reports up to the winner's last acknowledged one are in the stream" \
  [ "$(reports node-5 | sort -n | tail -1)" -ge "${LAST[node-5]}" ]
# One chain: node-5's reports in stream order, each seq once, each linking to the one before.
awk -F'\t' '$1 == "report" && $2 == "node-5" {print $3, $6, $5}' "$WORK/archive.tsv" >"$WORK/node-5.chain"
check "twins: node-5's seq numbers once each in the stream ($(wc -l <"$WORK/node-5.chain") records, $(cut -d' ' -f1 "$WORK/node-5.chain" | sort -u | wc -l) distinct)" \
  [ "$(wc -l <"$WORK/node-5.chain")" -eq "$(cut -d' ' -f1 "$WORK/node-5.chain" | sort -u | wc -l)" ]
broken=$(sort -n "$WORK/node-5.chain" | awk 'NR > 1 && ($1 != seq + 1 || $2 != digest) {print $1; exit} {seq = $1; digest = $3}')
check "twins: one continuous chain, every report linking to the one before (first break: ${broken:-none})" [ -z "$broken" ]

finish
