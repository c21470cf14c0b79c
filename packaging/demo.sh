#!/usr/bin/env bash
# The demo behind `./gridnode.sh demo`, all on loopback in a throw-away directory (no root path
# touched): a throw-away PKI, a collector, this host enrolled and its certificate signed, the
# agent sampling this host and streaming signed reports to the collector, the collector's sink
# growing, the collector writing every report to a VictoriaMetrics on loopback (Prometheus
# remote_write), a PromQL query answered from it, and a technician's queries.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
RUN=$(mktemp -d "${TMPDIR:-/tmp}/gridnode-demo-XXXXXX")
SOCK=$RUN/control.sock
AGENT= COLLECTOR= VM=
cleanup() {
  for p in $AGENT $COLLECTOR $VM; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
NODE=$(hostname | tr -c 'A-Za-z0-9._\n-' '-' | cut -c1-64)
PORT=$((20000 + RANDOM % 40000))
VMPORT=$((20000 + RANDOM % 40000))
while [ "$VMPORT" = "$PORT" ]; do VMPORT=$((20000 + RANDOM % 40000)); done
WEBPORT=$((20000 + RANDOM % 40000))
while [ "$WEBPORT" = "$PORT" ] || [ "$WEBPORT" = "$VMPORT" ]; do WEBPORT=$((20000 + RANDOM % 40000)); done
command -v victoria-metrics >/dev/null || { echo "victoria-metrics missing (./gridnode.sh deps)"; exit 1; }
# A host without hwmon sensors (a VM) reads the test suite's coretemp tree instead, so that the
# demo shows sensor values; procfs (load, memory) is this host's own.
ROOTS=()
if ! ls /sys/class/hwmon/*/temp*_input >/dev/null 2>&1; then
  ROOTS=(--sysfs-root "$PWD/tests/fixtures/hwmon/coretemp/sys")
fi

say victoria-metrics -httpListenAddr "127.0.0.1:$VMPORT" -storageDataPath vm "(a time-series database)"
victoria-metrics -httpListenAddr "127.0.0.1:$VMPORT" -storageDataPath "$RUN/vm" \
  -search.latencyOffset=0s -loggerLevel=ERROR 2>"$RUN/vm.log" &
VM=$!
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$VMPORT/health" >/dev/null 2>&1 && break
  sleep 0.05
done

say gridnode-collector pki init --dir pki
"$BIN/gridnode-collector" pki init --dir "$RUN/pki"

say gridnoded enroll --node-id "$NODE" --state-dir state
"$BIN/gridnoded" enroll --node-id "$NODE" --state-dir "$RUN/state"

say gridnode-collector pki sign --dir pki --csr state/node.csr --out state/node.crt
"$BIN/gridnode-collector" pki sign --dir "$RUN/pki" --csr "$RUN/state/node.csr" --out "$RUN/state/node.crt"

say gridnode-collector serve --listen "127.0.0.1:$PORT" --sink sink.jsonl \
  --remote-write "http://127.0.0.1:$VMPORT/api/v1/write" "(mutual TLS in; remote_write out)"
"$BIN/gridnode-collector" serve --listen "127.0.0.1:$PORT" --ca "$RUN/pki/ca.crt" \
  --cert "$RUN/pki/collector.crt" --key "$RUN/pki/collector.key" --sink "$RUN/sink.jsonl" \
  --remote-write "http://127.0.0.1:$VMPORT/api/v1/write" 2>"$RUN/collector.log" &
COLLECTOR=$!

cat >"$RUN/agent.toml" <<TOML
[agent]
interval = 1.0
state_dir = "$RUN/state"
[node]
site = "demo"
[upstream]
endpoints = ["127.0.0.1:$PORT"]
ca = "$RUN/pki/ca.crt"
[control]
socket = "$SOCK"
group = ""  # root and the agent's own user only: a demo needs no group
[web]
listen_addresses = ["127.0.0.1:$WEBPORT"]  # Prometheus scrapes it like node_exporter
TOML
say gridnoded --config agent.toml "${ROOTS[@]}" "(samples this host every second, streams to the collector)"
if [ ${#ROOTS[@]} -gt 0 ]; then
  echo "  (no hwmon sensors on this host, a VM most likely: the agent reads the test suite's"
  echo "   coretemp tree tests/fixtures/hwmon/coretemp for them; load and memory are this host's)"
fi
"$BIN/gridnoded" --config "$RUN/agent.toml" "${ROOTS[@]}" 2>"$RUN/agent.log" &
AGENT=$!
for _ in $(seq 100); do
  "$BIN/gridnodectl" --socket "$SOCK" status >/dev/null 2>&1 && break
  sleep 0.05
done

for i in 1 2 3 4 5; do
  sleep 1
  lines=$(wc -l <"$RUN/sink.jsonl" 2>/dev/null || echo 0)
  last=$(tail -n 1 "$RUN/sink.jsonl" 2>/dev/null |
    jq -r 'select(.type == "report") | "report \(.seq) of \(.node): \(.metrics | length) values, verified by the signature of report \(.verified_by)"' 2>/dev/null || true)
  echo "  sink: $lines lines${last:+; last: $last}"
done

say gridnodectl status
"$BIN/gridnodectl" --socket "$SOCK" status

say "tail -n 1 sink.jsonl | jq '{type, node, seq, boot_id, time, labels, metrics: .metrics[:3]}'"
tail -n 1 "$RUN/sink.jsonl" | jq '{type, node, seq, boot_id, time, labels, metrics: .metrics[:3]}'

promql() {  # QUERY: the instant query's series, one a line, from VictoriaMetrics
  curl -sf --data-urlencode "query=$1" "http://127.0.0.1:$VMPORT/api/v1/query" |
    jq -r '.data.result[] | "  \(.metric | to_entries | map(select(.key != "__name__") | "\(.key)=\(.value)") | join(" ")): \(.value[1])"'
}
for _ in $(seq 100); do
  [ -n "$(promql 'node_load1' 2>/dev/null)" ] && break
  sleep 0.1
done
say "curl http://127.0.0.1:$VMPORT/api/v1/query --data-urlencode 'query=node_load1'   (PromQL, from VictoriaMetrics)"
promql 'node_load1' || true
say "curl … --data-urlencode 'query=node_hwmon_temp_celsius{sensor=\"temp1\"}'"
promql 'node_hwmon_temp_celsius{sensor="temp1"}' || true
say "curl … --data-urlencode 'query=count_over_time(node_load1[1m])'   (every report is a sample)"
promql 'count_over_time(node_load1[1m])' || true

say gridnodectl sensors
"$BIN/gridnodectl" --socket "$SOCK" sensors || true

say "gridnodectl gpus    (accelerators through NVML and amdgpu; none on this host, most likely)"
"$BIN/gridnodectl" --socket "$SOCK" gpus || true

say "gridnodectl events  (what the local security policy saw)"
"$BIN/gridnodectl" --socket "$SOCK" events || true

say "gridnodectl metrics | grep -E '^node_(load1|memory_MemAvailable_bytes) '"
"$BIN/gridnodectl" --socket "$SOCK" metrics | grep -E '^node_(load1|memory_MemAvailable_bytes) ' || true

say "curl -s http://127.0.0.1:$WEBPORT/metrics | grep -E '^node_(load1|memory_MemAvailable_bytes) '   (the same, scraped as node_exporter is)"
curl -s "http://127.0.0.1:$WEBPORT/metrics" | grep -E '^node_(load1|memory_MemAvailable_bytes) ' || true

echo
echo "The agent's log:"
sed 's/^/  /' "$RUN/agent.log"
echo "The collector's log:"
sed 's/^/  /' "$RUN/collector.log"
