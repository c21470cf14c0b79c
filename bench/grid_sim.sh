#!/usr/bin/env bash
# The grid on one machine (docs/simulator.md): a nats-server (-js, temporary store, loopback),
# COLLECTORS collectors publishing into it, the capacity view following the stream, and
# gridnode-sim driving NODES simulated nodes, each its own mutual-TLS session, one report every
# INTERVAL seconds. Then, unless SCALE_NODES=0, SCALE_NODES more node identities published
# straight into the stream, a fresh capacity view reading them all, and its freshness measured
# while updates keep coming. Prints a table.
#   bench/grid_sim.sh                               (the defaults below: a few minutes here)
#   NODES=2000 INTERVAL=1 COLLECTORS=3 bench/grid_sim.sh
# Knobs (environment): NODES=1000 INTERVAL=5 DURATION=30 COLLECTORS=2 RAMP=25 (connections/s)
#   SCALE_NODES=100000 SCALE_SECONDS=40 SCALE_RATE=500 (reports/s) TRACKED=20 (nodes polled)
#   GRID_SIM_CACHE=build/grid-sim-cache (node identities, made once per NODES and kept)
#   COLLECTOR_BIN=$BIN/gridnode-collector (serve only: another build's, for bench/grid_compare.sh)
#   SIM_JSON=FILE (gridnode-sim's figures kept there)  PERF_DATA=FILE (perf record of collector 1)
source "$(dirname "$0")/lib.sh"
need nats-server jq curl python3
need_built gridnode-sim gridnode-collector
NODES=${NODES:-1000}
INTERVAL=${INTERVAL:-5}
DURATION=${DURATION:-30}
COLLECTORS=${COLLECTORS:-2}
RAMP=${RAMP:-25}
SCALE_NODES=${SCALE_NODES:-100000}
SCALE_SECONDS=${SCALE_SECONDS:-40}
SCALE_RATE=${SCALE_RATE:-500}
TRACKED=${TRACKED:-20}
CACHE=${GRID_SIM_CACHE:-build/grid-sim-cache}
ulimit -n "$(ulimit -Hn)"

# Node identities: P-256 keys and certificates from a throw-away CA, about 1 ms each; kept.
PKI=$CACHE/pki-$NODES
if [ ! -f "$PKI/nodes/sim$(printf %06d "$NODES").crt" ]; then
  rm -rf "$PKI.tmp"
  mkdir -p "$CACHE"
  echo "making $NODES node identities in $PKI (once)"
  "$BIN/gridnode-collector" pki init --dir "$PKI.tmp" --nodes "$(seq -f 'sim%06g' 1 "$NODES" | paste -sd,)" >/dev/null
  rm -rf "$PKI"
  mv "$PKI.tmp" "$PKI"
fi

nats-server -js -sd "$W/nats" -a 127.0.0.1 -p -1 -m -1 --ports_file_dir "$W" 2>"$W/nats.log" &
NP=$!
PIDS+=("$NP")
for _ in $(seq 100); do ls "$W"/*.ports >/dev/null 2>&1 && break; sleep 0.05; done
sleep 0.2
NATS=$(jq -r '.nats[0]' "$W"/*.ports)
within() {  # within SECONDS WHAT COMMAND...: polls until the command succeeds
  local end=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    [ $SECONDS -lt $end ] || { echo "timed out: $what"; tail -n 5 "$W"/*.log; exit 1; }
    sleep 0.2
  done
}
metric_is() { curl -fsS "http://127.0.0.1:$1/metrics" | grep -q "^$2 $3$"; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on $1"; tail "$W"/*.log; exit 1
}
ENDPOINTS=()
WATCH=(--watch "nats=$NP")
CPIDS=()
for c in $(seq "$COLLECTORS"); do
  port=$((20000 + RANDOM % 40000))
  "${COLLECTOR_BIN:-$BIN/gridnode-collector}" serve --listen "127.0.0.1:$port" --ca "$PKI/ca.crt" \
    --cert "$PKI/collector.crt" --key "$PKI/collector.key" --sink "$NATS" \
    --max-bytes 4294967296 2>"$W/c$c.log" &
  PIDS+=($!)
  CPIDS+=($!)
  WATCH+=(--watch "collector$c=$!")
  wait_port "$port"
  ENDPOINTS+=(--collector "127.0.0.1:$port")
done
HPORT=$((20000 + RANDOM % 40000))
"$BIN/gridnode-collector" capacity --from "$NATS" --listen "127.0.0.1:$HPORT" \
  --default-interval "$INTERVAL" 2>"$W/v.log" &
V=$!
PIDS+=("$V")
WATCH+=(--watch "capacity=$V")
wait_port "$HPORT"

echo "sessions: $NODES nodes, one report each every $INTERVAL s, to $COLLECTORS collectors; $DURATION s measured" >&2
if [ -n "${PERF_DATA:-}" ]; then
  # After the connections' ramp, for the measured window: where collector 1's CPU goes.
  # From the measured window's start (the simulator says so), for the window.
  (until grep -q "; measuring for" "$W/sim.err" 2>/dev/null; do sleep 0.5; done
   exec perf record -g -F 499 -p "${CPIDS[0]}" -o "$PERF_DATA" -- sleep "$((DURATION - 5))") \
    >"$W/perf.log" 2>&1 &
fi
"$BIN/gridnode-sim" "${ENDPOINTS[@]}" --pki "$PKI" --nodes "$NODES" --interval "$INTERVAL" \
  --duration "$DURATION" --ramp "$RAMP" "${WATCH[@]}" >"$W/sim.json" 2> >(tee "$W/sim.err" >&2) || {
  echo "gridnode-sim: not every report was acknowledged"; cat "$W/sim.json"; tail "$W"/c*.log; }
within 120 "the capacity view reads the stream" metric_is "$HPORT" gridnode_capacity_consumer_pending_messages 0
curl -fsS "http://127.0.0.1:$HPORT/metrics" >"$W/v1.prom"
sim_nodes=$(awk '$1 == "gridnode_capacity_nodes" {print $2}' "$W/v1.prom")
vq() { awk -v q="$2" '$1 == "gridnode_capacity_freshness_seconds{quantile=\""q"\"}" {printf "%.0f", $2 * 1000}' "$1"; }
for p in "$V" "${CPIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done

s() { jq -r "$1" "$W/sim.json"; }
if [ -n "${SIM_JSON:-}" ]; then
  # The stream's bytes per message (reports, catalogs, the bucket's index apart), from nats-server.
  curl -fsS "$(jq -r '.monitoring[0]' "$W"/*.ports)/jsz?streams=true" >"$W/jsz.json" || echo '{}' >"$W/jsz.json"
  jq --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --slurpfile jsz "$W/jsz.json" \
    '. + {loadavg: $load, stream: ([$jsz[0].account_details[]?.stream_detail[]? | select(.name == "GRIDNODE_REPORTS") | .state | {messages, bytes}] | first)}' \
    "$W/sim.json" >"$SIM_JSON"
fi
printf '\n%-44s %s\n' "load average at start of table" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %s of %s (%s s to connect at %s/s)\n' "mTLS sessions" "$(s .connected)" "$NODES" "$(s '.connect_seconds|.*10|round/10')" "$RAMP"
printf '%-44s %s series, every %s s\n' "report" "$(s .series_per_report)" "$INTERVAL"
printf '%-44s %s in %s s: %s/s\n' "reports acknowledged" "$(s .reports_acked_in_window)" "$(s '.window_seconds|round')" "$(s '.reports_per_second|round')"
printf '%-44s %s\n' "collector CPU seconds (each)" "$(s '[.cpu_seconds|to_entries[]|select(.key|startswith("collector"))|.value*100|round/100]|join(" ")')"
printf '%-44s %s (CPU s: nats-server %s, capacity %s, simulator %s)\n' "reports per collector CPU-second" "$(s '.reports_per_collector_cpu_second|round')" "$(s '.cpu_seconds.nats*100|round/100')" "$(s '.cpu_seconds.capacity*100|round/100')" "$(s '.cpu_seconds.sim*100|round/100')"
printf '%-44s p50 %s ms, p90 %s ms, p99 %s ms, max %s ms\n' "publish-ack latency (sampling to ack)" "$(s '.ack_latency_ms.p50*10|round/10')" "$(s '.ack_latency_ms.p90*10|round/10')" "$(s '.ack_latency_ms.p99*10|round/10')" "$(s '.ack_latency_ms.max|round')"
printf '%-44s %s\n' "every report acknowledged" "$(s .all_acked)"
printf '%-44s p50 %s ms, p99 %s ms\n' "capacity view holding it (its own figure)" "$(vq "$W/v1.prom" 0.5)" "$(vq "$W/v1.prom" 0.99)"

[ "$SCALE_NODES" -gt 0 ] || exit 0
echo "scale: $SCALE_NODES node identities published into the stream" >&2
python3 bench/capacity_records.py gen "$SCALE_NODES" "$SCALE_NODES" 1 | python3 tests/integration/nats_pub.py "$NATS" >/dev/null
HPORT=$((20000 + RANDOM % 40000))
t0=$(date +%s%N)
"$BIN/gridnode-collector" capacity --from "$NATS" --listen "127.0.0.1:$HPORT" \
  --default-interval 3600 2>"$W/v2.log" &
V=$!
PIDS+=("$V")
wait_port "$HPORT"
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$V/status")
total=$((SCALE_NODES + sim_nodes))
within 600 "the capacity view reads $total nodes" metric_is "$HPORT" gridnode_capacity_nodes "$total"
load_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rss1=$(awk '/VmRSS/ {print $2}' "/proc/$V/status")
python3 bench/capacity_records.py fresh "$NATS" "$HPORT" "$SCALE_NODES" "$SCALE_SECONDS" "$SCALE_RATE" "$TRACKED" >"$W/fresh.json"
within 120 "the capacity view catches up" metric_is "$HPORT" gridnode_capacity_consumer_pending_messages 0
curl -fsS "http://127.0.0.1:$HPORT/metrics" >"$W/v2.prom"
a0=$(date +%s%N)
curl -fsS "http://127.0.0.1:$HPORT/v1/capacity?min_free_gpus=4" >"$W/answer.json"
answer_ms=$(( ($(date +%s%N) - a0) / 1000000 ))
f() { jq -r "$1" "$W/fresh.json"; }
printf '%-44s %s (%s of them in the sessions above), read in %s ms\n' "nodes in the capacity view" "$total" "$sim_nodes" "$load_ms"
printf '%-44s %s -> %s KiB: %s bytes per node\n' "capacity view resident set" "$rss0" "$rss1" "$(( (rss1 - rss0) * 1024 / total ))"
printf '%-44s %s reports at %s/s for %s s; %s changes seen\n' "updates while polled" "$(f .published)" "$SCALE_RATE" "$SCALE_SECONDS" "$(f .count)"
printf '%-44s p50 %s ms, p99 %s ms, max %s ms (poll round %s ms)\n' "freshness: sampling to GET /v1/nodes answer" "$(f '.p50_ms|round')" "$(f '.p99_ms|round')" "$(f '.max_ms|round')" "$(f '.poll_round_ms|round')"
printf '%-44s p50 %s ms, p99 %s ms\n' "capacity view holding it (its own figure)" "$(vq "$W/v2.prom" 0.5)" "$(vq "$W/v2.prom" 0.99)"
printf '%-44s %s ms (%s matching)\n' "GET /v1/capacity over all nodes" "$answer_ms" "$(jq .matching "$W/answer.json")"
printf '%-44s %s\n' "load average at end" "$(cut -d' ' -f1-3 /proc/loadavg)"
