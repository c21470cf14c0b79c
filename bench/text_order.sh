#!/usr/bin/env bash
# Regenerates agent/gridnoded.order, the order in which the linker lays out gridnoded's functions
# (CMakeLists.txt, GRIDNODE_ORDER_TEXT). The kernel maps a program's code in blocks around each
# page it touches (fault-around, and whole folios on newer kernels), so the daemon's resident
# code is every block that holds at least one function it runs. Packing the functions it runs
# together, ahead of the rest, leaves the code it never runs on pages it never maps.
#
# Three profiled runs under callgrind, each split into start-up and steady state (callgrind_control
# dumps at the switch):
#   bare     the footprint bench's agent without a listener;
#   minimal  the footprint bench's agent: enrolled, sampling a generated sysfs tree, no uplink,
#            its scrape endpoint scraped (gzip and plain);
#   full     the agent streaming to a local collector over mutual TLS, with the package's policy,
#            two GPUs through the fake libnvidia-ml.so.1, and technicians' queries.
# The order file lists the functions both steady states ran first, then those only start-up ran.
# Functions the runs never reached are not listed: the linker puts them after.
#
#   bench/text_order.sh [SECONDS]   (default 30 per run; needs valgrind and a build with tests,
#                                    for the fake NVML library)
# Run it after a change that moves much of what the daemon runs, then bench/footprint.sh to see
# the effect; integration.text_order_test fails when most of the file no longer names functions.
source "$(dirname "$0")/lib.sh"
SECS=${1:-30}
OUT=agent/gridnoded.order
FAKE_NVML=${GRIDNODE_FAKE_NVML:-build/fakes/nvml/libnvidia-ml.so.1}
need valgrind callgrind_control nm
need_built gridnoded gridnodectl gridnode-collector
[ -e "$FAKE_NVML" ] || { echo "needs $FAKE_NVML: build with tests (./gridnode.sh build)" >&2; exit 1; }
BINABS=$(readlink -f "$BIN")

# profile NAME ARGS...: runs gridnoded under callgrind; writes W/NAME.startup and W/NAME.steady,
# the mangled names of the functions each phase ran.
profile() {
  local name=$1
  shift
  (cd "$W" && exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="$W/$name.cg" \
    "$BINABS/gridnoded" "$@" 2>"$W/$name.log") &
  local pid=$!
  PIDS+=("$pid")
  sleep 8  # start-up under valgrind, and the first sweeps
  callgrind_control -d "$pid" >/dev/null
  local t
  for ((t = 0; t < SECS; t += 3)); do
    if [ "$name" = minimal ]; then
      # Scraped as Prometheus scrapes it (gzip), and once plain, as curl would.
      curl -sf -H 'Accept-Encoding: gzip' "127.0.0.1:$wport/metrics" >/dev/null || true
      curl -sf "127.0.0.1:$wport/metrics" >/dev/null || true
    fi
    if [ "$name" = full ]; then
      for c in status sensors metrics gpus events policy; do
        "$BIN/gridnodectl" --socket "$W/$name.sock" "$c" >/dev/null 2>&1 || true
      done
    fi
    sleep 3
  done
  kill -INT "$pid"
  wait "$pid" || true
  local f
  f=$(ls "$W/$name.cg".* | sort | head -1)  # the dump at the switch: start-up
  fn_names "$f" >"$W/$name.startup"
  fn_names "$W/$name.cg" >"$W/$name.steady"
}
fn_names() { sed -n -E 's/^c?fn=\([0-9]+\) (.+)$/\1/p' "$1" | sort -u; }

gen_sysfs "$W/sys"
"$BIN/gridnoded" enroll --node-id minimal --state-dir "$W/minimal-state" >/dev/null
printf '[control]\ngroup = "root"\n' >"$W/minimal.toml"
# The same agent without a listener: what its steady state runs when nobody scrapes it.
profile bare --config "$W/minimal.toml" --sysfs-root "$W/sys" --socket "$W/bare.sock" \
  --state-dir "$W/minimal-state" --interval 1 --log-level warning
wport=$((20000 + RANDOM % 40000))
profile minimal --config "$W/minimal.toml" --sysfs-root "$W/sys" --socket "$W/minimal.sock" \
  --state-dir "$W/minimal-state" --interval 1 --log-level warning \
  --web.listen-address="127.0.0.1:$wport"

port=$((20000 + RANDOM % 40000))
"$BIN/gridnode-collector" pki init --dir "$W/pki" >/dev/null
"$BIN/gridnoded" enroll --node-id full --state-dir "$W/full-state" >/dev/null
"$BIN/gridnode-collector" pki sign --dir "$W/pki" --csr "$W/full-state/node.csr" \
  --out "$W/full-state/node.crt" >/dev/null
"$BIN/gridnode-collector" serve --listen "127.0.0.1:$port" --ca "$W/pki/ca.crt" \
  --cert "$W/pki/collector.crt" --key "$W/pki/collector.key" --sink "$W/sink.jsonl" \
  2>"$W/collector.log" &
PIDS+=("$!")
sed 's/^group = "gridnode"/group = "root"/' packaging/policy.toml >"$W/policy.toml"
cat >"$W/full.toml" <<TOML
[agent]
interval = 1.0
state_dir = "$W/full-state"
[upstream]
endpoints = ["127.0.0.1:$port"]
ca = "$W/pki/ca.crt"
[control]
socket = "$W/full.sock"
group = "root"
[policy]
file = "$W/policy.toml"
[nvml]
library = "$(readlink -f "$FAKE_NVML")"
TOML
FAKE_NVML_SCENARIO=$PWD/tests/fixtures/nvml/two_gpus.scenario \
  profile full --config "$W/full.toml" --sysfs-root "$W/sys" --log-level warning
[ -s "$W/sink.jsonl" ] || { echo "the profiled agent streamed nothing" >&2; cat "$W/full.log" >&2; exit 1; }

# Only the daemon's own functions: the rest (libc, ld.so) are not ours to lay out.
nm "$BIN/gridnoded" | awk '$2 ~ /^[tTwWiI]$/ {print $3}' | sort -u >"$W/ours"
# Tiers: what every steady state runs; then what only a scraped agent's steady state adds (the
# HTTP server, deflate), so that an agent without a listener never maps those blocks while a
# scraped one finds them right after the first tier; then start-up.
sort -u "$W/bare.steady" "$W/full.steady" | comm -12 - "$W/ours" >"$W/tier1"
sort -u "$W/minimal.steady" | comm -12 - "$W/ours" | comm -23 - "$W/tier1" >"$W/tier1w"
sort -u "$W/minimal.startup" "$W/bare.startup" "$W/full.startup" | comm -12 - "$W/ours" |
  comm -23 - "$W/tier1" | comm -23 - "$W/tier1w" >"$W/tier2"
{
  echo "# gridnoded's link order (lld --symbol-ordering-file): generated by bench/text_order.sh,"
  echo "# do not edit. $(wc -l <"$W/tier1") functions the steady state runs, $(wc -l <"$W/tier1w") more a scraped one runs, then $(wc -l <"$W/tier2") only start-up runs."
  cat "$W/tier1" "$W/tier1w" "$W/tier2"
} >"$OUT"
echo "wrote $OUT: $(wc -l <"$W/tier1") steady-state, $(wc -l <"$W/tier1w") scrape and $(wc -l <"$W/tier2") start-up functions"
