#!/usr/bin/env bash
# End-to-end footprint: resident memory and CPU of an enrolled gridnoded (so it also builds and
# signs a report every round) after N one-second sweeps,
# measured in the same run as Debian's node_exporter scraped once a second on the same tree
# (the baseline). The sysfs tree is generated: 3 Super-I/O-like chips, ~285 hwmon readings, plus
# this host's real /proc.
#   bench/footprint.sh [SECONDS]      (default 60)
source "$(dirname "$0")/lib.sh"
need prometheus-node-exporter curl jq bc
need_built gridnoded gridnodectl
SECS=${1:-60}

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
"$BIN/gridnoded" --config "$W/agent.toml" --sysfs-root "$W/sys" --socket "$W/c.sock" \
  --state-dir "$W/state" --interval 1 --log-level warning 2>"$W/agent.log" &
GN=$!
PIDS+=("$GN")

port=$((20000 + RANDOM % 40000))
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

gn0=$(cpu_ns $GN); ne0=$(cpu_ns $NE); t0=$(date +%s.%N)
for _ in $(seq "$SECS"); do
  curl -sf "127.0.0.1:$port/metrics" >"$W/ne.prom"  # node_exporter's cost is per scrape
  sleep 1
done
gn1=$(cpu_ns $GN); ne1=$(cpu_ns $NE); t1=$(date +%s.%N)

status=$("$BIN/gridnodectl" --socket "$W/c.sock" status --json)
samples=$(jq '[.drivers[].samples] | add' <<<"$status")
rounds=$(jq '.rounds' <<<"$status")
ne_samples=$(grep -vc '^#' "$W/ne.prom")
gn_rss=$(rss_kib $GN); ne_rss=$(rss_kib $NE)
wall=$(echo "$t1 - $t0" | bc -l)
gn_cpu=$(echo "($gn1 - $gn0) / 10^9 / $wall * 100" | bc -l)
ne_cpu=$(echo "($ne1 - $ne0) / 10^9 / $wall * 100" | bc -l)

printf '%-28s %10s %10s %12s %8s\n' program "RSS MiB" "CPU %" samples sweeps
printf '%-28s %10.2f %10.3f %12s %8s\n' "gridnoded (1 s interval)" "$(echo "$gn_rss/1024" | bc -l)" "$gn_cpu" "$samples" "$rounds"
printf '%-28s %10.2f %10.3f %12s %8s\n' "node_exporter 1.5 (1 s scrape)" "$(echo "$ne_rss/1024" | bc -l)" "$ne_cpu" "$ne_samples" "$SECS"
jq -r '.report | "signed reports: \(.reports_total), the last \(.last_bytes) bytes for \(.last_samples) samples (\(.last_bytes_per_sample * 1000 | round / 1000) B/sample), signing took \(.last_sign_seconds * 1e6 | round) us"' <<<"$status"
printf 'ratio gridnoded/node_exporter: RSS %.3f, CPU %.3f (over %.0f s of wall time)\n' \
  "$(echo "$gn_rss/$ne_rss" | bc -l)" "$(echo "($gn_cpu+0.000001)/($ne_cpu+0.000001)" | bc -l)" "$wall"
