#!/usr/bin/env bash
# The CPU the collector's remote_write costs per sample, beside Debian's vmagent forwarding the
# same samples, in the same run, into one VictoriaMetrics on loopback:
#   gridnode-collector serve --remote-write: sink lines (JSON, as the collector stores them)
#     appended to a running collector's sink, read, built into WriteRequests, snappy, POSTed;
#   vmagent -remoteWrite.url: the same samples as Prometheus text with timestamps, POSTed to its
#     /api/v1/import/prometheus, parsed, queued and forwarded.
# Each one's CPU (utime + stime of its process) from the moment the data is handed over to the
# moment VictoriaMetrics holds every sample. The inputs differ (JSON lines against text), as
# each program's natural input does; the output is the same remote_write.
#   bench/remote_write_cpu.sh [REPORTS]   (default 2000 reports of 300 series; needs
#   victoria-metrics and vmagent (Debian: victoria-metrics), python3, curl, jq, build/bin)
source "$(dirname "$0")/lib.sh"
for tool in victoria-metrics vmagent python3 curl jq; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install victoria-metrics python3 curl jq" >&2; exit 1; }
done
[ -x "$BIN/gridnode-collector" ] || { echo "needs $BIN/gridnode-collector: ./gridnode.sh build" >&2; exit 1; }
REPORTS=${1:-2000}
SERIES=300
port() { echo $((20000 + RANDOM % 30000)); }
VMPORT=$(port) AGPORT=$(port) CPORT=$(port)
TCK=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TCK" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }

# Both inputs, from one generator: the same names, labels, values and times.
python3 - "$W" "$REPORTS" "$SERIES" <<'PY'
import json, sys, time
w, reports, series = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = int(time.time()) - reports  # one report a second, ending now
with open(f"{w}/sink.jsonl", "w") as sink, open(f"{w}/import.prom", "w") as prom:
    for r in range(reports):
        t_ms = (t0 + r) * 1000 + 123
        metrics = []
        for s in range(series):
            name = f"node_hwmon_m{s % 10}"
            labels = {"chip": f"platform_nct6775_{s // 100}", "sensor": f"in{s % 100}"}
            value = 40 + (r * 7 + s) % 50 + 0.125
            metrics.append({"name": name, "labels": labels, "value": value})
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            prom.write(f'{name}{{{lab},instance="node-1",job="vmagent",region="east",site="dc1"}} {value} {t_ms}\n')
        line = {"type": "report", "node": "node-1", "seq": r + 1, "time_ns": t_ms * 1000000,
                "labels": {"region": "east", "site": "dc1"}, "events": [], "metrics": metrics,
                "raw": "AAAA"}
        sink.write(json.dumps(line, separators=(",", ":")) + "\n")
PY
TOTAL=$((REPORTS * SERIES))

victoria-metrics -httpListenAddr "127.0.0.1:$VMPORT" -storageDataPath "$W/vm" \
  -search.latencyOffset=0s -search.disableCache -loggerLevel=ERROR 2>"$W/vm.log" &
PIDS+=($!)
vmagent -httpListenAddr "127.0.0.1:$AGPORT" -remoteWrite.url "http://127.0.0.1:$VMPORT/api/v1/write" \
  -remoteWrite.tmpDataPath "$W/vmagent" -loggerLevel=ERROR 2>"$W/vmagent.log" &
AGENT=$!
PIDS+=($!)
"$BIN/gridnode-collector" pki init --dir "$W/pki" >/dev/null
: >"$W/col.jsonl"
"$BIN/gridnode-collector" serve --listen "127.0.0.1:$CPORT" --ca "$W/pki/ca.crt" \
  --cert "$W/pki/collector.crt" --key "$W/pki/collector.key" --sink "$W/col.jsonl" \
  --remote-write "http://127.0.0.1:$VMPORT/api/v1/write" 2>"$W/collector.log" &
COL=$!
PIDS+=($!)
for url in "http://127.0.0.1:$VMPORT/health" "http://127.0.0.1:$AGPORT/health"; do
  for _ in $(seq 300); do curl -fs "$url" >/dev/null && break; sleep 0.1; done
done
sleep 1
held() {  # JOB: samples VictoriaMetrics holds of that job
  curl -fs --data-urlencode "query=sum(count_over_time({job=\"$1\"}[$((REPORTS + 60))s]))" \
    "http://127.0.0.1:$VMPORT/api/v1/query" | jq -r '.data.result[0].value[1] // 0'
}
wait_all() {  # JOB PID: CPU seconds of PID when all samples are held
  local end=$((SECONDS + 300))
  until [ "$(held "$1")" = "$TOTAL" ]; do
    [ $SECONDS -lt $end ] || { echo "timed out: $(held "$1") of $TOTAL samples of job $1" >&2; exit 1; }
    sleep 0.2
  done
}

c0=$(cpu_s "$COL"); t0=$(date +%s.%N)
cat "$W/sink.jsonl" >>"$W/col.jsonl"
wait_all gridnode "$COL"
c1=$(cpu_s "$COL"); t1=$(date +%s.%N)
a0=$(cpu_s "$AGENT"); u0=$(date +%s.%N)
curl -fs --data-binary "@$W/import.prom" "http://127.0.0.1:$AGPORT/api/v1/import/prometheus"
wait_all vmagent "$AGENT"
a1=$(cpu_s "$AGENT"); u1=$(date +%s.%N)
echo "samples: $TOTAL ($REPORTS reports of $SERIES series), sink $(stat -c %s "$W/sink.jsonl") bytes, text $(stat -c %s "$W/import.prom") bytes"
awk -v c="$(echo "$c1 - $c0" | bc)" -v w="$(echo "$t1 - $t0" | bc)" -v n="$TOTAL" \
  'BEGIN {printf "gridnode-collector remote_write: %.2f CPU s, %.2f s wall, %.2f us CPU per sample, %.0f samples per CPU second\n", c, w, c * 1e6 / n, n / c}'
awk -v c="$(echo "$a1 - $a0" | bc)" -v w="$(echo "$u1 - $u0" | bc)" -v n="$TOTAL" \
  'BEGIN {printf "vmagent (text import, forwarded):  %.2f CPU s, %.2f s wall, %.2f us CPU per sample, %.0f samples per CPU second\n", c, w, c * 1e6 / n, n / c}'
