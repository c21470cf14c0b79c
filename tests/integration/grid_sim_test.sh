#!/usr/bin/env bash
# The grid simulator, small (so that it does not rot; bench/grid_sim.sh runs it big): a
# nats-server, two collectors publishing into it, the capacity view, and gridnode-sim driving 50
# simulated nodes over mutual TLS for a few seconds. Every report is acknowledged, the stream
# holds every report of every node exactly once (the exported archive says so), and the capacity
# view shows a simulated node's latest report with its accelerators.
source "$(dirname "$0")/lib.sh"

command -v nats-server >/dev/null || { echo "nats-server missing (./gridnode.sh deps)"; exit 1; }
[ -x "$BIN/gridnode-sim" ] || { echo "gridnode-sim not built (GRIDNODE_BUILD_BENCH=OFF): skipped"; exit 77; }
COL=$BIN/gridnode-collector
NODES=50

mkdir "$WORK/nats"
nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p -1 --ports_file_dir "$WORK/nats" \
  2>"$WORK/nats/log" &
PIDS+=($!)
wait_for "nats-server ports" 10 bash -c "jq -e '.nats[0]' '$WORK'/nats/*.ports"
NATS=$(jq -r '.nats[0]' "$WORK"/nats/*.ports)

P=$WORK/pki
"$COL" pki init --dir "$P" --nodes "$(seq -f 'sim%06g' 1 "$NODES" | paste -sd,)" >/dev/null
ENDPOINTS=()
for c in 1 2; do
  port=$(free_port)
  "$COL" serve --listen "127.0.0.1:$port" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$NATS" --max-bytes 268435456 2>"$WORK/collector$c.log" &
  PIDS+=($!)
  wait_for "collector $c listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  ENDPOINTS+=(--collector "127.0.0.1:$port" --watch "collector$c=$!")
done
HPORT=$(free_port)
"$COL" capacity --from "$NATS" --listen "127.0.0.1:$HPORT" --default-interval 0.2 \
  2>"$WORK/view.log" &
PIDS+=($!)
wait_for "capacity view listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HPORT"

rc=0
"$BIN/gridnode-sim" "${ENDPOINTS[@]}" --pki "$P" --nodes "$NODES" --interval 0.2 --duration 3 \
  --ramp 100 --drain 30 --per-node "$WORK/per-node" --ascend-share 0.5 \
  >"$WORK/sim.json" 2>"$WORK/sim.log" || rc=$?
cat "$WORK/sim.json"
check "gridnode-sim exits 0 (every report acknowledged)" [ "$rc" = 0 ]
check "all $NODES nodes connected over mutual TLS" jq_is ".connected == $NODES" "$WORK/sim.json"
check "every node's reports were all acknowledged" \
  jq_is ".all_acked and .nodes_all_acked == $NODES and .reports_acked == .reports_made" "$WORK/sim.json"
check "each node sent reports in the window (at least 5)" \
  awk '$2 < 5 || $3 != $2 {bad = 1} END {exit bad || NR != '"$NODES"'}' "$WORK/per-node"
check "ack latency was measured" jq_is '.ack_latency_ms.count > 0 and .ack_latency_ms.p50 > 0' "$WORK/sim.json"
check "the collectors' CPU time was read" \
  jq_is '.cpu_seconds.collector1 > 0 and .reports_per_collector_cpu_second > 0' "$WORK/sim.json"

# The stream holds every acknowledged report of every node exactly once: 1..last_seq.
"$COL" export --from "$NATS" --sink "$WORK/archive.jsonl" --drain 2>"$WORK/export.log"
jq -r 'select(.type == "report") | "\(.node) \(.seq)"' "$WORK/archive.jsonl" | sort -k1,1 -k2,2n >"$WORK/stored"
awk '{for (s = 1; s <= $2; ++s) print $1, s}' "$WORK/per-node" | sort -k1,1 -k2,2n >"$WORK/expected"
check "the stream holds every report of every node once ($(wc -l <"$WORK/expected") reports)" \
  cmp -s "$WORK/stored" "$WORK/expected"

# The capacity view shows a simulated node's last report, with its accelerator summary.
last=$(awk '$1 == "sim000007" {print $2}' "$WORK/per-node")
wait_for "the view holds sim000007's last report" 10 \
  bash -o pipefail -c "curl -fsS http://127.0.0.1:$HPORT/v1/nodes/sim000007 | jq -e '.seq == $last'"
curl -fsS "http://127.0.0.1:$HPORT/v1/nodes/sim000007" >"$WORK/node.json"
check "the view shows sim000007 at seq $last with 8 H100s, busy + idle = 8" \
  jq_is ".seq == $last and .accelerators == 8 and .busy + .idle == 8 and (.model | test(\"H100\"))" "$WORK/node.json"
# A mixed fleet: every other node is an Ascend host (8 NPUs, vendor="huawei"); the view counts
# both vendors in its totals and answers for one.
wait_for "the view holds all $NODES nodes" 10 \
  bash -o pipefail -c "curl -fsS 'http://127.0.0.1:$HPORT/v1/capacity?min_free_gpus=0' | jq -e '.total.nodes == $NODES'"
curl -fsS "http://127.0.0.1:$HPORT/v1/nodes/sim000008" >"$WORK/npu-node.json"
check "sim000008 is an Ascend node with 8 NPUs" jq_is ".accelerators == 8 and .busy + .idle == 8" "$WORK/npu-node.json"
curl -fsS "http://127.0.0.1:$HPORT/v1/capacity?min_free_gpus=0" >"$WORK/all.json"
curl -fsS "http://127.0.0.1:$HPORT/v1/capacity?min_free_gpus=0&vendor=huawei" >"$WORK/huawei.json"
curl -fsS "http://127.0.0.1:$HPORT/v1/capacity?min_free_gpus=0&vendor=nvidia" >"$WORK/nvidia.json"
check "totals count both vendors: $NODES nodes, $((NODES * 8)) accelerators" \
  jq_is ".total.nodes == $NODES and .total.accelerators == $((NODES * 8))" "$WORK/all.json"
check "?vendor=huawei: half the nodes, their NPUs only" \
  jq_is ".total.nodes == $((NODES / 2)) and .total.accelerators == $((NODES / 2 * 8))" "$WORK/huawei.json"
check "?vendor=nvidia: the other half" \
  jq_is ".total.nodes == $((NODES / 2)) and ([.nodes[].node] | index(\"sim000008\") == null)" "$WORK/nvidia.json"
[ "$FAILS" = 0 ] || tail -n 5 "$WORK/sim.log" "$WORK"/collector*.log "$WORK/view.log"
finish
