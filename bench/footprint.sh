#!/usr/bin/env bash
# End-to-end footprint: resident memory and CPU of an enrolled gridnoded (so it also builds and
# signs a report every round) after N one-second sweeps, with its scrape endpoint on
# (--web.listen-address) and scraped once a second, measured in the same run as Debian's
# node_exporter scraped once a second on the same tree (the baseline). One real Prometheus
# scrapes both (as a site would), or, with --curl or without prometheus installed, a curl loop.
# The sysfs tree is generated: 3 Super-I/O-like chips, ~285 hwmon readings, plus this host's
# real /proc.
#   bench/footprint.sh [SECONDS] [--curl | --no-web]   (default 60; needs build/bin/gridnoded,
#       and the packages prometheus-node-exporter, prometheus, jq, curl, bc)
#   --no-web: the agent without a listener (the figure before the endpoint existed), curl scrapes
#   node_exporter only.
# GRIDNODE_BIN_DIR=DIR runs the gridnoded and gridnodectl in DIR (a kept copy of another build,
# to compare two builds in the same hour); GRIDNODE_SMAPS=FILE saves the agent's
# /proc/PID/smaps at the end (per mapping: what is resident, anonymous or file).
source "$(dirname "$0")/lib.sh"
need prometheus-node-exporter curl jq bc
need_built gridnoded gridnodectl
SECS=${1:-60}
MODE=${2:-prometheus}
case $MODE in prometheus | --curl | --no-web) ;; *) echo "unknown mode $MODE" >&2; exit 2 ;; esac
if [ "$MODE" = prometheus ] && ! command -v prometheus >/dev/null; then
  echo "prometheus not installed (apt-get install prometheus): scraping with curl" >&2
  MODE=--curl
fi

gen_sysfs "$W/sys"

# CPU time in ns, all threads, from schedstat (the 100 Hz tick counters in /proc/PID/stat are
# too coarse for a process that uses a few milliseconds a minute).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# The socket group is one /etc/group holds, as the package's `gridnode` group is on an installed
# host; a group only NSS modules know would map them into the daemon (about 0.35 MiB).
printf '[control]\ngroup = "root"\n' >"$W/agent.toml"
# Enrolled: every round also builds a report and signs it with the node key.
"$BIN/gridnoded" enroll --node-id footprint --state-dir "$W/state" >/dev/null
port=$((20000 + RANDOM % 40000))
gport=$((port + 1))
web=()
[ "$MODE" = --no-web ] || web=(--web.listen-address="127.0.0.1:$gport")
"$BIN/gridnoded" --config "$W/agent.toml" --sysfs-root "$W/sys" --socket "$W/c.sock" \
  --state-dir "$W/state" --interval 1 --log-level warning "${web[@]}" 2>"$W/agent.log" &
GN=$!
PIDS+=("$GN")

prometheus-node-exporter --collector.disable-defaults --collector.hwmon --collector.thermal_zone \
  --collector.rapl --collector.cpu --collector.meminfo --collector.loadavg --collector.netdev \
  --collector.diskstats --collector.stat --path.sysfs="$W/sys" \
  --web.listen-address="127.0.0.1:$port" 2>"$W/ne.log" &
NE=$!
PIDS+=("$NE")
for _ in $(seq 100); do
  "$BIN/gridnodectl" --socket "$W/c.sock" status >/dev/null 2>&1 &&
    curl -sf "127.0.0.1:$port/metrics" >/dev/null && break
  sleep 0.1
done

curl -sf "127.0.0.1:$port/metrics" >"$W/ne.prom"
if [ "$MODE" = prometheus ]; then
  pport=$((port + 2))
  cat >"$W/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: gridnoded
    static_configs: [{targets: ['127.0.0.1:$gport']}]
  - job_name: node_exporter
    static_configs: [{targets: ['127.0.0.1:$port']}]
YAML
  prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/tsdb" \
    --web.listen-address="127.0.0.1:$pport" --log.level=warn 2>"$W/prometheus.log" &
  PIDS+=($!)
  query() {
    curl -sfG --data-urlencode "query=$1" "http://127.0.0.1:$pport/api/v1/query" |
      jq -r '.data.result[0].value[1] // empty'
  }
  for _ in $(seq 300); do
    [ "$(query 'sum(up)' 2>/dev/null)" = 2 ] && break
    sleep 0.1
  done
  [ "$(query 'sum(up)')" = 2 ] || { echo "Prometheus does not scrape both:" >&2; tail "$W/prometheus.log" >&2; exit 1; }
fi
# Scrapes served: the agent's own counter, and node_exporter's promhttp counter.
gn_scrapes() {
  [ "$MODE" = --no-web ] && { echo 0; return; }
  curl -sf "127.0.0.1:$gport/metrics" | awk '$1 == "gridnode_web_requests_total" {print $2}'
}
ne_scrapes() {
  curl -sf "127.0.0.1:$port/metrics" |
    awk '$1 == "promhttp_metric_handler_requests_total{code=\"200\"}" {print $2}'
}

gs0=$(gn_scrapes); ns0=$(ne_scrapes)
gn0=$(cpu_ns $GN); ne0=$(cpu_ns $NE); t0=$(date +%s.%N)
for _ in $(seq "$SECS"); do
  if [ "$MODE" = --curl ]; then
    curl -sf "127.0.0.1:$gport/metrics" >"$W/gn.prom"
    curl -sf "127.0.0.1:$port/metrics" >"$W/ne.prom"
  elif [ "$MODE" = --no-web ]; then
    curl -sf "127.0.0.1:$port/metrics" >"$W/ne.prom"  # node_exporter's cost is per scrape
  fi
  sleep 1
done
gn1=$(cpu_ns $GN); ne1=$(cpu_ns $NE); t1=$(date +%s.%N)
# The two counting scrapes themselves are left out: one each side, before and after.
gs1=$(gn_scrapes); ns1=$(ne_scrapes)
gn_n=$((gs1 - gs0 - 1)); ne_n=$((ns1 - ns0 - 1))
[ "$MODE" = --no-web ] && gn_n=0

status=$("$BIN/gridnodectl" --socket "$W/c.sock" status --json)
samples=$(jq '[.drivers[].samples] | add' <<<"$status")
rounds=$(jq '.rounds' <<<"$status")
ne_samples=$(grep -vc '^#' "$W/ne.prom")
gn_rss=$(rss_kib $GN); ne_rss=$(rss_kib $NE)
[ -z "${GRIDNODE_SMAPS:-}" ] || cp "/proc/$GN/smaps" "$GRIDNODE_SMAPS"
wall=$(echo "$t1 - $t0" | bc -l)
gn_cpu=$(echo "($gn1 - $gn0) / 10^9 / $wall * 100" | bc -l)
ne_cpu=$(echo "($ne1 - $ne0) / 10^9 / $wall * 100" | bc -l)

# CPU per scrape: all the process's CPU over the run, divided by the scrapes it served. For
# node_exporter that is what a scrape costs (it reads the tree when scraped); for gridnoded it
# includes its own once-a-second sweep, report and signature, which it does scraped or not.
per_scrape() {  # cpu_ns0 cpu_ns1 scrapes
  if [ "$3" -gt 0 ]; then echo "($2 - $1) / $3 / 10^6" | bc -l; else echo 0; fi
}
echo "mode: ${MODE#--}, $SECS s"
printf '%-30s %8s %8s %10s %8s %8s %8s\n' program "RSS MiB" "CPU %" "ms/scrape" scrapes samples sweeps
printf '%-30s %8.2f %8.3f %10.3f %8s %8s %8s\n' "gridnoded (1 s interval)" "$(echo "$gn_rss/1024" | bc -l)" "$gn_cpu" "$(per_scrape "$gn0" "$gn1" "$gn_n")" "$gn_n" "$samples" "$rounds"
printf '%-30s %8.2f %8.3f %10.3f %8s %8s %8s\n' "node_exporter 1.5" "$(echo "$ne_rss/1024" | bc -l)" "$ne_cpu" "$(per_scrape "$ne0" "$ne1" "$ne_n")" "$ne_n" "$ne_samples" "$ne_n"
jq -r '.report | "signed reports: \(.reports_total), the last \(.last_bytes) bytes for \(.last_samples) samples (\(.last_bytes_per_sample * 1000 | round / 1000) B/sample), signing took \(.last_sign_seconds * 1e6 | round) us"' <<<"$status"
printf 'ratio gridnoded/node_exporter: RSS %.3f, CPU %.3f (over %.0f s of wall time)\n' \
  "$(echo "$gn_rss/$ne_rss" | bc -l)" "$(echo "($gn_cpu+0.000001)/($ne_cpu+0.000001)" | bc -l)" "$wall"
