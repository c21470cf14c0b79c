#!/usr/bin/env bash
# Capacity-view freshness, end to end on loopback: AGENTS real gridnoded sample every INTERVAL
# seconds and stream over mutual TLS to two collectors publishing into JetStream (a nats-server
# started here); `gridnode-collector capacity` follows the stream. A poller asks the view for
# every node every 10 ms; when a node's answer shows a new report, freshness = the moment the
# answer arrived - the report's sampling time (time_ns). Prints p50, p99 and max of that, and the
# view's own figure (sampling to the view holding it), and the collectors' publish-to-ack path.
#   bench/capacity_freshness.sh [SECONDS] [INTERVAL] [AGENTS]   (defaults 30, 1 and 10)
source "$(dirname "$0")/lib.sh"
need nats-server jq curl python3
need_built gridnoded gridnode-collector
SECS=${1:-30}
INTERVAL=${2:-1}
AGENTS=${3:-10}
FIXTURES=tests/fixtures
nats-server -js -sd "$W/nats" -a 127.0.0.1 -p -1 --ports_file_dir "$W" 2>"$W/nats.log" &
PIDS+=($!)
for _ in $(seq 100); do ls "$W"/*.ports >/dev/null 2>&1 && break; sleep 0.05; done
sleep 0.2
NATS=$(jq -r '.nats[0]' "$W"/*.ports)
nodes=$(seq -f "n%03g" 1 "$AGENTS" | paste -sd,)
"$BIN/gridnode-collector" pki init --dir "$W/pki" --nodes "$nodes" >/dev/null
P1=$((20000 + RANDOM % 20000))
P2=$((40000 + RANDOM % 20000))
for p in $P1 $P2; do
  "$BIN/gridnode-collector" serve --listen "127.0.0.1:$p" --ca "$W/pki/ca.crt" \
    --cert "$W/pki/collector.crt" --key "$W/pki/collector.key" --sink "$NATS" \
    --max-bytes 1073741824 2>>"$W/c.log" &
  PIDS+=($!)
done
HPORT=$((20000 + RANDOM % 40000))
sleep 0.5
"$BIN/gridnode-collector" capacity --from "$NATS" --listen "127.0.0.1:$HPORT" 2>"$W/v.log" &
PIDS+=($!)
i=0
for n in ${nodes//,/ }; do
  i=$((i + 1))
  mkdir -m 700 "$W/$n"
  install -m 600 "$W/pki/nodes/$n.key" "$W/$n/node.key"
  install -m 644 "$W/pki/nodes/$n.crt" "$W/$n/node.crt"
  printf '[node]\nregion = "r%d"\nsite = "s%d"\n' $((i % 2)) $((i % 4)) >"$W/$n.toml"
  "$BIN/gridnoded" --config "$W/$n.toml" --state-dir "$W/$n" --socket "$W/$n.sock" \
    --sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc" \
    --interval "$INTERVAL" --upstream "127.0.0.1:$([ $((i % 2)) = 0 ] && echo $P1 || echo $P2)" \
    --ca "$W/pki/ca.crt" --log-level warning 2>>"$W/a.log" &
  PIDS+=($!)
done
python3 - "$HPORT" "$SECS" "${nodes//,/ }" >"$W/ms" <<'PY'
import http.client, json, sys, time
port, secs, nodes = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split()
seen, end = {}, time.time() + secs
conn = None
while time.time() < end:
    for n in nodes:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/nodes/" + n)
            r = conn.getresponse()
            body = r.read()
            now = time.time_ns()
            conn.close()
        except OSError:
            continue
        if r.status != 200:
            continue
        j = json.loads(body)
        if seen.get(n) not in (None, j["seq"]):
            print((now - j["time_ns"]) / 1e6)
        seen[n] = j["seq"]
    time.sleep(0.01)
PY
sort -n "$W/ms" -o "$W/ms"
n=$(wc -l <"$W/ms")
[ "$n" -gt 0 ] || { echo "no answers changed:"; tail "$W/c.log" "$W/v.log" "$W/a.log"; exit 1; }
pick() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$W/ms"; }
view=$(curl -fsS "http://127.0.0.1:$HPORT/metrics" | awk '/^gridnode_capacity_freshness_seconds\{quantile="0.5"\}/ {p50 = $2 * 1000} /^gridnode_capacity_freshness_seconds\{quantile="0.99"\}/ {p99 = $2 * 1000} END {printf "p50 %.1f ms, p99 %.1f ms", p50, p99}')
printf 'agents %d at a %s s interval for %s s, %d changed answers; sampling-to-answer freshness: p50 %.1f ms, p99 %.1f ms, max %.1f ms (poll every 10 ms per node); view holding it: %s\n' \
  "$AGENTS" "$INTERVAL" "$SECS" "$n" "$(pick 50)" "$(pick 99)" "$(tail -1 "$W/ms")" "$view"
