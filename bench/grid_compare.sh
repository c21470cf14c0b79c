#!/usr/bin/env bash
# Two collector builds on the same grid, interleaved (base, this, base, this, …), so that a shared
# machine's noise falls on both alike: bench/grid_sim.sh for each, RUNS times at each rate, then
# per rate the medians of reports per collector CPU-second, nats-server CPU per report and
# publish-ack latency, and this build's ratio to the base.
#   bench/grid_compare.sh BASE_COLLECTOR [RATE...]      (RATE: reports/s; default 200 1000)
# Knobs: NODES=1000 (INTERVAL = NODES / RATE) RUNS=3 DURATION=30 RAMP=50; the rest is grid_sim.sh's.
# Each run's figures stay in $OUT_DIR (default build/grid-compare) as base-RATE-N.json, new-….
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BASE=${1:?usage: bench/grid_compare.sh BASE_COLLECTOR [RATE...]}
shift
RATES=("${@:-200 1000}")
read -r -a RATES <<<"${RATES[*]}"
NODES=${NODES:-1000}
RUNS=${RUNS:-3}
OUT_DIR=${OUT_DIR:-build/grid-compare}
NEW=${GRIDNODE_BIN_DIR:-build/bin}/gridnode-collector
mkdir -p "$OUT_DIR"
for rate in "${RATES[@]}"; do
  interval=$(awk -v n="$NODES" -v r="$rate" 'BEGIN {printf "%g", n / r}')
  for run in $(seq "$RUNS"); do
    for which in base new; do
      bin=$BASE
      [ "$which" = new ] && bin=$NEW
      echo "rate $rate/s run $run: $which ($bin)" >&2
      COLLECTOR_BIN=$bin NODES=$NODES INTERVAL=$interval SCALE_NODES=0 \
        DURATION=${DURATION:-30} RAMP=${RAMP:-50} SIM_JSON="$OUT_DIR/$which-$rate-$run.json" \
        bench/grid_sim.sh >"$OUT_DIR/$which-$rate-$run.txt" 2>&1 ||
        echo "  failed: $OUT_DIR/$which-$rate-$run.txt" >&2
    done
  done
done
python3 - "$OUT_DIR" "$RUNS" "${RATES[@]}" <<'EOF'
import json, statistics, sys, pathlib
out, runs, rates = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def figures(which, rate):
    rows = []
    for run in range(1, runs + 1):
        p = out / f"{which}-{rate}-{run}.json"
        if not p.exists():
            continue
        j = json.loads(p.read_text())
        acked = j["reports_acked_in_window"]
        cpu = j["cpu_seconds"]
        rows.append({
            "per_cpu_s": j["reports_per_collector_cpu_second"],
            "nats_us": cpu["nats"] / acked * 1e6 if acked else 0,
            "capacity_us": cpu["capacity"] / acked * 1e6 if acked else 0,
            "p50": j["ack_latency_ms"]["p50"], "p99": j["ack_latency_ms"]["p99"],
            "acked": j["all_acked"], "load": j.get("loadavg", "?")})
    return rows
med = lambda rows, k: statistics.median(r[k] for r in rows) if rows else float("nan")
print(f"{'rate/s':>7} {'build':>5} {'runs':>4} {'reports/collector CPU-s':>24} {'nats us/report':>15} "
      f"{'capacity us/report':>19} {'ack p50 ms':>11} {'ack p99 ms':>11}  all acked, load averages")
for rate in rates:
    b, n = figures("base", rate), figures("new", rate)
    for name, rows in (("base", b), ("new", n)):
        print(f"{rate:>7} {name:>5} {len(rows):>4} {med(rows, 'per_cpu_s'):>24.0f} {med(rows, 'nats_us'):>15.0f} "
              f"{med(rows, 'capacity_us'):>19.0f} {med(rows, 'p50'):>11.1f} {med(rows, 'p99'):>11.1f}  "
              f"{','.join(str(r['acked']) for r in rows)}; {' | '.join(r['load'] for r in rows)}")
    if b and n:
        print(f"{rate:>7} {'ratio':>5} {'':>4} {med(n, 'per_cpu_s') / med(b, 'per_cpu_s'):>24.2f} "
              f"{med(n, 'nats_us') / med(b, 'nats_us'):>15.2f} {'':>19} "
              f"{med(n, 'p50') / med(b, 'p50'):>11.2f} {med(n, 'p99') / med(b, 'p99'):>11.2f}")
EOF
