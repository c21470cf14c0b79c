#!/usr/bin/env bash
# The capacity view with real processes: nats-server, a collector that creates the stream and
# stores a real agent's reports, synthetic reports carrying the accelerator summary (published
# straight into the stream, as collectors would), and `gridnode-collector capacity` answering
# over HTTP: best nodes first, filters, totals, stale and failed nodes not free, /metrics.
source "$(dirname "$0")/lib.sh"

command -v nats-server >/dev/null || { echo "nats-server missing (./gridnode.sh deps)"; exit 1; }
COL=$BIN/gridnode-collector
PUB=(python3 "$SRC/tests/integration/nats_pub.py")

mkdir "$WORK/nats"
nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p -1 --ports_file_dir "$WORK/nats" \
  2>"$WORK/nats/log" &
PIDS+=($!)
wait_for "nats-server ports" 10 bash -c "jq -e '.nats[0]' '$WORK'/nats/*.ports"
NATS=$(jq -r '.nats[0]' "$WORK"/nats/*.ports)

# A collector creates the stream, and a real agent streams to it.
P=$WORK/pki
"$COL" pki init --dir "$P" --nodes node-1 >/dev/null
mkdir -m 700 "$WORK/n1"
install -m 600 "$P/nodes/node-1.key" "$WORK/n1/node.key"
install -m 644 "$P/nodes/node-1.crt" "$WORK/n1/node.crt"
PORT=$(free_port)
"$COL" serve --listen "127.0.0.1:$PORT" --ca "$P/ca.crt" --cert "$P/collector.crt" \
  --key "$P/collector.key" --sink "$NATS" --max-bytes 268435456 2>"$WORK/collector.log" &
PIDS+=($!)
# 30 s: creating the stream on a machine busy with parallel tests took over 10 s once; the logs
# say why if it never listens.
wait_for "collector listening" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" ||
  { tail -20 "$WORK/collector.log" "$WORK/nats/log"; exit 1; }
printf '[node]\nregion = "east"\nsite = "dc1"\n' >"$WORK/agent.toml"
"$BIN/gridnoded" --config "$WORK/agent.toml" --state-dir "$WORK/n1" --socket "$WORK/n1.sock" \
  --sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc" \
  --interval 0.2 --upstream "127.0.0.1:$PORT" --ca "$P/ca.crt" 2>"$WORK/agent.log" &
PIDS+=($!)

# Synthetic nodes: summary series (capacity.hpp), and one with dcgm-exporter's series only.
now=$(date +%s%N)
GiB=1073741824
record() {  # record NODE REGION SITE SEQ TIME_NS METRICS_JSON
  printf 'gridnode.reports.%s.%s.%s\t%s:synthetic:%s\t{"type":"report","node":"%s","seq":%s,"time_ns":%s,"labels":{"region":"%s","site":"%s"},"metrics":%s}\n' \
    "$2" "$3" "$1" "$1" "$4" "$1" "$4" "$5" "$2" "$3" "$6"
}
summary() {  # summary MODEL TOTAL BUSY UNHEALTHY FREE_GIB HEADROOM_W
  printf '[{"name":"gridnode_accelerators","labels":{"modelName":"%s"},"value":%s},{"name":"gridnode_accelerators_busy","labels":{},"value":%s},{"name":"gridnode_accelerators_unhealthy","labels":{},"value":%s},{"name":"gridnode_accelerator_memory_free_bytes","labels":{},"value":%s},{"name":"gridnode_accelerator_power_headroom_watts","labels":{},"value":%s}]' \
    "$1" "$2" "$3" "$4" "$(($5 * GiB))" "$6"
}
dcgm='[{"name":"DCGM_FI_DEV_FB_FREE","labels":{"gpu":"0","modelName":"NVIDIA L40S"},"value":40000},{"name":"DCGM_FI_DEV_FB_FREE","labels":{"gpu":"1","modelName":"NVIDIA L40S"},"value":40000},{"name":"DCGM_FI_DEV_GPU_UTIL","labels":{"gpu":"0"},"value":0},{"name":"DCGM_FI_DEV_GPU_UTIL","labels":{"gpu":"1"},"value":87},{"name":"DCGM_FI_DEV_POWER_USAGE","labels":{"gpu":"0"},"value":100},{"name":"DCGM_FI_DEV_POWER_USAGE","labels":{"gpu":"1"},"value":300},{"name":"DCGM_FI_DEV_POWER_MGMT_LIMIT","labels":{"gpu":"0"},"value":350},{"name":"DCGM_FI_DEV_POWER_MGMT_LIMIT","labels":{"gpu":"1"},"value":350}]'
s=1000000000
{
  record g1 east dc1 1 $((now - 60 * s)) "$(summary 'NVIDIA A100' 8 3 0 300 900)"
  record g1 east dc1 2 "$now" "$(summary 'NVIDIA A100' 8 2 0 400 1200)"
  record g2 east dc2 1 "$now" "$(summary 'NVIDIA A100' 8 7 0 10 100)"
  record g3 west dc9 1 $((now - 3610 * s)) "$(summary 'NVIDIA H100' 4 0 0 320 2000)"
  record g3 west dc9 2 $((now - 3600 * s)) "$(summary 'NVIDIA H100' 4 0 0 320 2000)"
  record g4 east dc1 1 "$now" "$(summary 'NVIDIA A100' 8 0 8 600 3000)"
  record g5 west dc8 1 "$now" "$dcgm"
} | "${PUB[@]}" "$NATS" >/dev/null

HPORT=$(free_port)
start_view() {
  "$COL" capacity --from "$NATS" --listen "127.0.0.1:$HPORT" --default-interval 60 \
    2>>"$WORK/capacity.log" &
  VIEW=$!
  PIDS+=("$VIEW")
  wait_for "capacity view answering" 10 curl -fsS "http://127.0.0.1:$HPORT/metrics"
}
start_view
URL=http://127.0.0.1:$HPORT
wait_for "node-1 reported through the collector" 20 curl -fsS "$URL/v1/nodes/node-1"
wait_for "synthetic nodes read" 10 bash -c "curl -fsS '$URL/metrics' | grep -q '^gridnode_capacity_nodes 6$'"

cap=$(curl -fsS "$URL/v1/capacity")
check "capacity: best first: g1 (6 idle), g5 (1 idle, 78 GiB), g2 ($(jq -c '[.nodes[].node]' <<<"$cap"))" \
  [ "$(jq -c '[.nodes[].node]' <<<"$cap")" = '["g1","g5","g2"]' ]
check "capacity: g1 has 6 free accelerators, 400 GiB free, 1200 W headroom" \
  jq_is '.nodes[0] | .free_accelerators == 6 and .memory_free_mib == 409600 and .power_headroom_watts == 1200 and .health == "ok"' <<<"$cap"
check "capacity: dcgm-exporter series stand in for the summary (g5: 2 GPUs, 1 busy, 300 W headroom)" \
  jq_is '.nodes[1] | .accelerators == 2 and .busy == 1 and .model == "NVIDIA L40S" and .power_headroom_watts == 300' <<<"$cap"
check "capacity: per-region totals (east: 4 nodes, 6+1 free)" \
  jq_is '.regions[] | select(.region == "east") | .nodes == 4 and .free_accelerators == 7' <<<"$cap"
check "capacity: per-site totals (west/dc9: 1 node, stale, nothing free)" \
  jq_is '.sites[] | select(.site == "dc9") | .nodes == 1 and .stale_nodes == 1 and .free_accelerators == 0' <<<"$cap"
check "filter: region=east&min_free_gpus=2 -> g1" \
  [ "$(curl -fsS "$URL/v1/capacity?region=east&min_free_gpus=2" | jq -c '[.nodes[].node]')" = '["g1"]' ]
check "filter: min_free_mem_mib=100000 -> g1" \
  [ "$(curl -fsS "$URL/v1/capacity?min_free_mem_mib=100000" | jq -c '[.nodes[].node]')" = '["g1"]' ]
check "filter: model=NVIDIA%20H100 -> none free (its only node is stale)" \
  jq_is '(.nodes | length) == 0 and .total.nodes == 1 and .total.stale_nodes == 1' <<<"$(curl -fsS "$URL/v1/capacity?model=NVIDIA%20H100")"
check "filter: site=dc2 -> g2" \
  [ "$(curl -fsS "$URL/v1/capacity?site=dc2" | jq -c '[.nodes[].node]')" = '["g2"]' ]
check "a bad filter is a 400" [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/capacity?min_free_gpus=lots")" = 400 ]
check "node: g3 stale (data older than three intervals), not free" \
  jq_is '.stale == true and .free_accelerators == 0 and .age_seconds > 3599' <<<"$(curl -fsS "$URL/v1/nodes/g3")"
check "node: g4 failed (every accelerator unhealthy), not free" \
  jq_is '.health == "failed" and .free_accelerators == 0' <<<"$(curl -fsS "$URL/v1/nodes/g4")"
check "node: node-1, a real agent through the collector, in east/dc1 without accelerators" \
  jq_is '.region == "east" and .site == "dc1" and .accelerators == 0 and .seq > 0' <<<"$(curl -fsS "$URL/v1/nodes/node-1")"
check "node: an unknown node is a 404" [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/nodes/nope")" = 404 ]
curl -fsS "$URL/metrics" >"$WORK/metrics.txt"
check "metrics: consumer lag and totals" bash -c "grep -Eq '^gridnode_capacity_consumer_pending_messages [0-9]$' '$WORK/metrics.txt' && grep -q '^gridnode_capacity_accelerators_free 8$' '$WORK/metrics.txt' && grep -q '^gridnode_capacity_nodes_stale 1$' '$WORK/metrics.txt'"
check "metrics: every message read, the real agent's stream records too" grep -q '^gridnode_capacity_consumer_unreadable_total 0$' "$WORK/metrics.txt"
if command -v promtool >/dev/null; then
  check "metrics: promtool accepts them" bash -c "promtool check metrics <'$WORK/metrics.txt'"
fi

# Hostile HTTP clients (oversized request line and headers, garbage, POST, slowloris, more
# connections than the view takes, peers hanging up): each refused, and the view still answers.
check "hostile HTTP clients refused (http::Server's limits)" \
  python3 "$SRC/tests/integration/hostile_http.py" 127.0.0.1 "$HPORT" --path /v1/capacity \
  --request-timeout 10 --max-connections 64
check "after them, a query is answered as before" \
  jq_is '.total.nodes == 6' <<<"$(curl -fsS "$URL/v1/capacity")"
check "the view counts what it refused" bash -o pipefail -c \
  "curl -fsS '$URL/metrics' | grep -Eq '^gridnode_capacity_http_refused_connections_total [1-9]'"

# A change on a node shows at once. (Timed here with process start-ups on a shared machine, so
# only reported; bench/capacity_freshness.sh measures freshness.)
t0=$(date +%s%N)
record g1 east dc1 3 "$t0" "$(summary 'NVIDIA A100' 8 8 0 0 0)" | "${PUB[@]}" "$NATS" >/dev/null
wait_for "g1 busy in the view" 10 bash -o pipefail -c "curl -fsS '$URL/v1/nodes/g1' | jq -e '.busy == 8'"
check "a change on g1 is visible ($(( ($(date +%s%N) - t0) / 1000000 )) ms after its sampling, publisher and curl included)" \
  jq_is '.busy == 8 and .free_accelerators == 0' <<<"$(curl -fsS "$URL/v1/nodes/g1")"

# Restarted, the view is whole at once: each node's last record is read first.
kill -TERM "$VIEW"
wait "$VIEW" 2>/dev/null || true
start_view
wait_for "view rebuilt" 10 bash -o pipefail -c "curl -fsS '$URL/v1/nodes/g1' | jq -e '.busy == 8'"
check "restart: state rebuilt from each node's last record" \
  jq_is '.total.nodes == 6' <<<"$(curl -fsS "$URL/v1/capacity")"

finish
