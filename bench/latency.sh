#!/usr/bin/env bash
# Agent-to-collector latency on loopback, end to end: gridnoded samples this host every
# INTERVAL seconds and streams over mutual TLS to gridnode-collector; for every report in the
# sink, latency = received_ns (the collector verified it) - time_ns (the agent sampled it).
# Prints median, p99 and max, and the collector's durable write rate.
#   bench/latency.sh [SECONDS] [INTERVAL]     (defaults 30 and 0.1)
source "$(dirname "$0")/lib.sh"
need jq
need_built gridnoded gridnode-collector
SECS=${1:-30}
INTERVAL=${2:-0.1}
PORT=$((20000 + RANDOM % 40000))
"$BIN/gridnode-collector" pki init --dir "$W/pki" --nodes bench >/dev/null
mkdir -m 700 "$W/state"
install -m 600 "$W/pki/nodes/bench.key" "$W/state/node.key"
install -m 644 "$W/pki/nodes/bench.crt" "$W/state/node.crt"
"$BIN/gridnode-collector" serve --listen "127.0.0.1:$PORT" --ca "$W/pki/ca.crt" \
  --cert "$W/pki/collector.crt" --key "$W/pki/collector.key" --sink "$W/sink.jsonl" 2>"$W/c.log" &
PIDS+=($!)
sleep 0.5
"$BIN/gridnoded" --state-dir "$W/state" --socket "$W/a.sock" --interval "$INTERVAL" \
  --upstream "127.0.0.1:$PORT" --ca "$W/pki/ca.crt" --log-level warning 2>"$W/a.log" &
PIDS+=($!)
sleep "$SECS"
[ -s "$W/sink.jsonl" ] || { echo "no reports reached the collector:"; cat "$W/a.log" "$W/c.log"; exit 1; }
jq -r 'select(.type == "report") | (.received_ns - .time_ns) / 1e6' "$W/sink.jsonl" | sort -n >"$W/ms"
n=$(wc -l <"$W/ms")
pick() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$W/ms"; }
printf 'reports %d over %s s at a %s s interval; sampling-to-collector latency: median %.2f ms, p99 %.2f ms, max %.2f ms\n' \
  "$n" "$SECS" "$INTERVAL" "$(pick 50)" "$(pick 99)" "$(tail -1 "$W/ms")"
