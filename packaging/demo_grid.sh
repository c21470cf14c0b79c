#!/usr/bin/env bash
# The demo behind `./gridnode.sh demo --grid`, all on loopback in a throw-away directory: a
# throw-away PKI, three nats-servers in a cluster (JetStream, three replicas), three collectors
# publishing into it, four agents on this host with their own node ids, regions and sites (their
# GPUs simulated by the test suite's fake libnvidia-ml.so.1 when it was built), and the capacity
# view the scheduler asks, and the exporter writing the stream to a VictoriaMetrics on loopback
# (Prometheus remote_write) that answers a PromQL query. One collector is killed to show the agents failing over. The topology
# is started by tests/integration/grid_lib.sh, the same helpers tests/integration/grid_test.sh
# uses; everything started is ended by PID when the demo exits (KEEP_WORK=1 keeps the directory).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRIDNODE_BIN_DIR=$PWD/build/bin GRIDNODE_SOURCE_DIR=$PWD
source tests/integration/lib.sh
GRID_INTERVAL=1
source tests/integration/grid_lib.sh
command -v nats-server >/dev/null || { echo "nats-server missing (./gridnode.sh deps)"; exit 1; }
command -v victoria-metrics >/dev/null || { echo "victoria-metrics missing (./gridnode.sh deps)"; exit 1; }

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
note() { printf '\033[2m# %s\033[0m\n' "$*"; }
NODES=(g1 g2 g3 g4)
declare -A REGION=([g1]=east [g2]=east [g3]=west [g4]=west)
declare -A SITE=([g1]=dc1 [g2]=dc2 [g3]=dc7 [g4]=dc7)

# Simulated GPUs: two H100s per node, in different states (tests/fixtures/nvml/two_gpus.scenario:
# GPU 0 runs a compute process, GPU 1 is idle).
GRID_ROOTS=()
FAKE=build/fakes/nvml/libnvidia-ml.so.1
if [ -f "$FAKE" ]; then
  GRID_ROOTS=(--nvml-library "$PWD/$FAKE")
  two=$FIXTURES/nvml/two_gpus.scenario
  cp "$two" "$WORK/one-busy.scenario"
  sed -e '/^process /d' -e 's/^value 0 util_gpu .*/value 0 util_gpu 0/' "$two" >"$WORK/idle.scenario"
  sed -e 's/^value 1 util_gpu .*/value 1 util_gpu 88/' "$two" >"$WORK/busy.scenario"
  GRID_SCENARIO=([g1]=$WORK/idle.scenario [g2]=$WORK/one-busy.scenario [g3]=$WORK/busy.scenario
    [g4]=$WORK/idle.scenario)
  note "GPUs simulated by $FAKE (the tests' fake NVML): g1, g4 idle, g2 one busy, g3 both busy"
else
  note "no fake NVML built ($FAKE): the nodes report no GPUs, the view counts them anyway"
fi

# A host without hwmon sensors (a VM) reads the test suite's coretemp tree instead.
if ! ls /sys/class/hwmon/*/temp*_input >/dev/null 2>&1; then
  GRID_ROOTS+=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys")
  note "no hwmon sensors on this host (a VM most likely): the agents read the test suite's coretemp tree tests/fixtures/hwmon/coretemp"
fi

say gridnode-collector pki init --dir pki --nodes "$(IFS=,; echo "${NODES[*]}")"
grid_pki "${NODES[@]}"

say "nats-server -js --cluster_name gridnode-grid … (three of them, routes on loopback)"
grid_nats_start_all
for i in 0 1 2; do echo "  n$i: nats://127.0.0.1:${NATS_PORT[$i]} (pid ${NPID[$i]})"; done

say "gridnode-collector serve --sink nats://…,nats://…,nats://… --replicas 3 (three collectors)"
note "the first one creates the stream and the bucket once the cluster has elected its leaders"
grid_collectors_start_all
for i in 0 1 2; do echo "  collector $i: 127.0.0.1:${COL_PORT[$i]} (pid ${CPID[$i]})"; done

say "gridnoded × 4 (each given the three collectors, starting with a different one)"
for n in "${NODES[@]}"; do
  grid_agent_start "$n" "${REGION[$n]}" "${SITE[$n]}"
  echo "  $n: region ${REGION[$n]}, site ${SITE[$n]} (pid ${APID[$n]})"
done

say "gridnode-collector capacity --from nats://… --listen 127.0.0.1:PORT"
grid_capacity_start
echo "  $CAP_URL"
all_in_view() {
  curl -fsS "$CAP_URL/metrics" | grep -q "^gridnode_capacity_nodes ${#NODES[@]}$" &&
    [ "$(curl -fsS "$CAP_URL/v1/capacity" | jq '.total.stale_nodes')" = 0 ]
}
wait_for "every node in the capacity view" 60 all_in_view ||
  { grid_show_log "$WORK"/*.log "$WORK"/g*/agent.log; exit 1; }

streams_to() {
  local n
  for n in "${NODES[@]}"; do
    echo "  $n -> collector $(grid_collector_of "$n") (acknowledged up to report $(grid_acked "$n"))"
  done
}
say "gridnodectl status --json | jq .uplink   (for each agent: where it streams)"
streams_to

say "curl -s $CAP_URL/v1/capacity | jq   (nodes that can take a job now, best first; totals)"
curl -fsS "$CAP_URL/v1/capacity" |
  jq '{nodes: [.nodes[] | {node, region, site, model, idle, busy, memory_free_mib, power_headroom_watts, age_seconds}], regions, total}'

say "curl -s '$CAP_URL/v1/capacity?region=east&min_free_gpus=2' | jq '[.nodes[].node]'"
curl -fsS "$CAP_URL/v1/capacity?region=east&min_free_gpus=2" | jq -c '[.nodes[].node]'

say "curl -s $CAP_URL/v1/nodes/g1 | jq"
curl -fsS "$CAP_URL/v1/nodes/g1" | jq

VMPORT=$(grid_port)
GRID_TAKEN+="$VMPORT "
say "victoria-metrics -httpListenAddr 127.0.0.1:$VMPORT -storageDataPath vm   (a time-series database)"
victoria-metrics -httpListenAddr "127.0.0.1:$VMPORT" -storageDataPath "$WORK/vm" \
  -search.latencyOffset=0s -loggerLevel=ERROR 2>>"$WORK/vm.log" &
PIDS+=($!)
wait_for "victoria-metrics up" 30 curl -fsS "http://127.0.0.1:$VMPORT/health"
say "gridnode-collector export --from nats://… --sink archive.jsonl --remote-write http://127.0.0.1:$VMPORT/api/v1/write"
"$BIN/gridnode-collector" export --from "$NATS_URLS" --sink "$WORK/archive.jsonl" \
  --remote-write "http://127.0.0.1:$VMPORT/api/v1/write" 2>>"$WORK/export.log" &
PIDS+=($!)
promql() {  # QUERY: the instant query's series, one a line, from VictoriaMetrics
  curl -fsS --data-urlencode "query=$1" "http://127.0.0.1:$VMPORT/api/v1/query" |
    jq -r '.data.result[] | "  \(.metric | to_entries | map(select(.key != "__name__") | "\(.key)=\(.value)") | join(" ")): \(.value[1])"'
}
all_in_db() { [ "$(promql 'node_load1' | wc -l)" = "${#NODES[@]}" ]; }
wait_for "every node in VictoriaMetrics" 60 all_in_db || grid_show_log "$WORK/export.log"
say "curl http://127.0.0.1:$VMPORT/api/v1/query --data-urlencode 'query=node_load1'   (PromQL)"
promql 'node_load1' || true
say "curl … --data-urlencode 'query=node_hwmon_temp_celsius{instance=\"g1\",sensor=\"temp1\"}'"
promql 'node_hwmon_temp_celsius{instance="g1",sensor="temp1"}' || true
say "curl … --data-urlencode 'query=sum by (region) (DCGM_FI_DEV_POWER_USAGE)'   (the fake GPUs' watts per region)"
promql 'sum by (region) (DCGM_FI_DEV_POWER_USAGE)' || true

victim=$(grid_collector_of g1)
victim=${victim:-0}
say "kill -9 <collector $victim>   (g1 streams to it)"
before=$(grid_acked g1)
grid_kill9 "${CPID[$victim]}"
moved() { local c; c=$(grid_collector_of g1); [ -n "$c" ] && [ "$c" != "$victim" ]; }
wait_for "g1 failing over" 90 moved && wait_for "g1 acknowledged again" 30 grid_acked_above g1 "$((before + 2))" ||
  { grid_show_log "$WORK/g1/agent.log"; exit 1; }
note "g1 failed over; the collector that took it over read its chain from the bucket:"
grep -h "node connected node=g1 .*have=[1-9]" "$WORK"/collector*.log | tail -n 1 | sed 's/^/  /'
streams_to

say "curl -s $CAP_URL/v1/nodes/g1 | jq '{node, seq, stale, age_seconds, idle, busy}'   (again)"
wait_for "g1 fresh in the view" 30 bash -c "curl -fsS '$CAP_URL/v1/nodes/g1' | jq -e '.stale == false'" || true
curl -fsS "$CAP_URL/v1/nodes/g1" | jq '{node, seq, stale, age_seconds, idle, busy}'

say "curl -s $CAP_URL/metrics | grep -E '^gridnode_capacity_(nodes|accelerators)'"
curl -fsS "$CAP_URL/metrics" | grep -E '^gridnode_capacity_(nodes|accelerators)' || true
echo
echo "Everything ran in $WORK; the processes are ended now (by PID) and the directory removed."
