#!/usr/bin/env bash
# The capacity view at grid scale: NODES synthetic node identities (each a report carrying the
# accelerator summary, on its own subject) published into JetStream, the view started on them,
# then UPDATES fresh reports of random nodes published while it runs. Prints the view's memory per
# node (resident set growth / nodes), how long it took to read the backlog, the freshness of the
# updates (sampling time to the view holding them: p50/p99), and the time to answer
# GET /v1/capacity over all nodes.
#   bench/capacity_scale.sh [NODES] [UPDATES]     (defaults 100000 and 20000)
source "$(dirname "$0")/lib.sh"
need nats-server jq curl python3
need_built gridnode-collector
NODES=${1:-100000}
UPDATES=${2:-20000}
nats-server -js -sd "$W/nats" -a 127.0.0.1 -p -1 --ports_file_dir "$W" 2>"$W/nats.log" &
PIDS+=($!)
for _ in $(seq 100); do ls "$W"/*.ports >/dev/null 2>&1 && break; sleep 0.05; done
sleep 0.2
NATS=$(jq -r '.nats[0]' "$W"/*.ports)
# A collector creates the stream with the documented settings, then goes.
"$BIN/gridnode-collector" pki init --dir "$W/pki" --nodes x >/dev/null
PORT=$((20000 + RANDOM % 40000))
"$BIN/gridnode-collector" serve --listen "127.0.0.1:$PORT" --ca "$W/pki/ca.crt" \
  --cert "$W/pki/collector.crt" --key "$W/pki/collector.key" --sink "$NATS" \
  --max-bytes 4294967296 2>"$W/c.log" &
C=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
kill "$C"; wait "$C" 2>/dev/null || true

gen() {  # gen COUNT SEQ: one report per node (all nodes, or COUNT random ones)
  python3 bench/capacity_records.py gen "$NODES" "$1" "$2"
}
gen "$NODES" 1 | python3 tests/integration/nats_pub.py "$NATS" >/dev/null
HPORT=$((20000 + RANDOM % 40000))
t0=$(date +%s%N)
"$BIN/gridnode-collector" capacity --from "$NATS" --listen "127.0.0.1:$HPORT" \
  --default-interval 3600 2>"$W/v.log" &
V=$!
PIDS+=("$V")
for _ in $(seq 200); do curl -fsS "http://127.0.0.1:$HPORT/metrics" >/dev/null 2>&1 && break; sleep 0.05; done
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$V/status")
until curl -fsS "http://127.0.0.1:$HPORT/metrics" | grep -q "^gridnode_capacity_nodes $NODES$"; do sleep 0.2; done
load_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rss1=$(awk '/VmRSS/ {print $2}' "/proc/$V/status")
gen "$UPDATES" 2 | python3 tests/integration/nats_pub.py "$NATS" >/dev/null
until curl -fsS "http://127.0.0.1:$HPORT/metrics" | grep -q '^gridnode_capacity_consumer_pending_messages 0$'; do sleep 0.1; done
sleep 0.5
m=$(curl -fsS "http://127.0.0.1:$HPORT/metrics")
q() { awk -v q="$1" -F'[ ]' '$1 == "gridnode_capacity_freshness_seconds{quantile=\""q"\"}" {printf "%.1f", $2 * 1000}' <<<"$m"; }
a0=$(date +%s%N)
curl -fsS "http://127.0.0.1:$HPORT/v1/capacity?min_free_gpus=4" >"$W/answer.json"
answer_ms=$(( ($(date +%s%N) - a0) / 1000000 ))
printf 'nodes %d: view read them in %d ms, resident %d -> %d KiB (%.0f bytes per node); %d updates published at once: freshness p50 %s ms, p99 %s ms (sampling to the view holding them; the backlog of a burst); GET /v1/capacity over all nodes %d ms (%d matching)\n' \
  "$NODES" "$load_ms" "$rss0" "$rss1" "$(( (rss1 - rss0) * 1024 / NODES ))" "$UPDATES" "$(q 0.5)" "$(q 0.99)" \
  "$answer_ms" "$(jq .matching "$W/answer.json")"
