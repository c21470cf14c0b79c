# shellcheck shell=bash disable=SC2034  # (sourced: its arrays are read by the scripts that source it)
# The grid on loopback, shared by tests/integration/grid_test.sh and `./gridnode.sh demo --grid`
# (packaging/demo_grid.sh): a three-node NATS cluster, collectors publishing into a stream with
# three replicas, agents streaming to any of the collectors, the capacity view. Sourced after
# lib.sh (BIN, WORK, PIDS, wait_for), not run. Every process it starts is in PIDS (lib.sh's
# cleanup ends them by PID) and in one of the arrays below, so that a caller can kill -9 one and
# start it again.
#
#   grid_nats_start_all / grid_nats_start I      NPID[I], logs $WORK/nats$I.log
#   grid_pki NODE...                             throw-away CA, collector and node certificates
#   grid_collector_start I                       CPID[I] on 127.0.0.1:${COL_PORT[I]}
#   grid_agent_start NODE REGION SITE [ENDPOINT-INDEX...]   APID[NODE], state in $WORK/NODE/
#   grid_capacity_start                          CAP_URL
# GRID_ROOTS (array): the agents' --sysfs-root/--procfs-root/--nvml-library flags;
# GRID_INTERVAL: the agents' interval (s); GRID_SCENARIO[NODE]: a fake NVML scenario file.

GRID_COLLECTORS=${GRID_COLLECTORS:-3}
GRID_INTERVAL=${GRID_INTERVAL:-0.1}
GRID_NEXT_START=0  # the first collector of the next node configured: round robin
declare -a NPID CPID NATS_PORT ROUTE_PORT COL_PORT
declare -A APID GRID_SCENARIO
# A port nobody listens on, below the ephemeral range (the servers' routes and every client
# connection take local ports from that range: a port chosen there can be taken before the server
# that was given it binds it), and never one this file already chose (none of them listens yet).
grid_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
GRID_TAKEN=" "
grid_port() {
  local p
  for _ in $(seq 100); do
    p=$(port_candidate)
    if [[ $GRID_TAKEN != *" $p "* ]] && ! grid_port_open "$p"; then
      echo "$p"  # (run in $(...): the caller adds it to GRID_TAKEN)
      return 0
    fi
  done
  return 1
}
for _i in 0 1 2; do
  NATS_PORT[$_i]=$(grid_port)
  GRID_TAKEN+="${NATS_PORT[$_i]} "
  ROUTE_PORT[$_i]=$(grid_port)
  GRID_TAKEN+="${ROUTE_PORT[$_i]} "
done
for ((_i = 0; _i < GRID_COLLECTORS; _i++)); do
  COL_PORT[$_i]=$(grid_port)
  GRID_TAKEN+="${COL_PORT[$_i]} "
done
NATS_URLS="nats://127.0.0.1:${NATS_PORT[0]},nats://127.0.0.1:${NATS_PORT[1]},nats://127.0.0.1:${NATS_PORT[2]}"
GRID_ROUTES="nats://127.0.0.1:${ROUTE_PORT[0]},nats://127.0.0.1:${ROUTE_PORT[1]},nats://127.0.0.1:${ROUTE_PORT[2]}"

grid_alive() { kill -0 "$1" 2>/dev/null; }
# grid_kill9 PID: SIGKILL one process this script started, and reap it.
grid_kill9() { { kill -9 "$1" && wait "$1"; } 2>/dev/null || true; }
# grid_show_log FILE...: the last lines of each log, for a wait that timed out.
grid_show_log() {
  local f
  for f in "$@"; do
    echo "--- last lines of $f" >&2
    tail -n 20 "$f" 2>/dev/null | sed 's/^/  /' >&2 || true
  done
}

# One nats-server of the cluster: routes to the other two on loopback, its own store directory
# (kept across a restart, as a real server's disk is).
grid_nats_start() {
  local i=$1
  nats-server -js -sd "$WORK/nats$i" -a 127.0.0.1 -p "${NATS_PORT[$i]}" -n "n$i" \
    --cluster_name gridnode-grid --cluster "nats://127.0.0.1:${ROUTE_PORT[$i]}" \
    --routes "$GRID_ROUTES" 2>>"$WORK/nats$i.log" &
  NPID[$i]=$!
  PIDS+=($!)
  wait_for "nats-server $i listening" 20 grid_port_open "${NATS_PORT[$i]}" ||
    { grid_show_log "$WORK/nats$i.log"; return 1; }
}
grid_nats_start_all() {
  local i
  for i in 0 1 2; do grid_nats_start "$i"; done
}

grid_pki() {
  local nodes
  nodes=$(IFS=,; echo "$*")
  "$BIN/gridnode-collector" pki init --dir "$WORK/pki" --nodes "$nodes" >/dev/null
}

# A collector publishing into the cluster (all three URLs: the client moves to another server by
# itself). It exits when it cannot create or check the stream, which happens while the cluster
# elects its JetStream leaders (at start, and after a server died): started again until it
# listens, for up to a minute.
grid_collector_start() {
  local i=$1 pid end=$((SECONDS + 60))
  while :; do
    "$BIN/gridnode-collector" serve --listen "127.0.0.1:${COL_PORT[$i]}" --ca "$WORK/pki/ca.crt" \
      --cert "$WORK/pki/collector.crt" --key "$WORK/pki/collector.key" --sink "$NATS_URLS" \
      --replicas 3 --max-bytes 268435456 2>>"$WORK/collector$i.log" &
    pid=$!
    until grid_port_open "${COL_PORT[$i]}" || ! grid_alive "$pid" || [ $SECONDS -ge $end ]; do
      sleep 0.1
    done
    grid_port_open "${COL_PORT[$i]}" || grid_kill9 "$pid"  # hung past the minute: given up
    if grid_alive "$pid"; then
      CPID[$i]=$pid
      PIDS+=("$pid")
      return 0
    fi
    wait "$pid" 2>/dev/null || true
    if [ $SECONDS -ge $end ]; then
      echo "collector $i did not start within 60 s" >&2
      grid_show_log "$WORK/collector$i.log"
      return 1
    fi
    sleep 0.5
  done
}
grid_collectors_start_all() {
  local i
  for ((i = 0; i < GRID_COLLECTORS; i++)); do grid_collector_start "$i"; done
}

# grid_agent_config NAME REGION SITE [ENDPOINT-INDEX...]: $WORK/NAME/agent.toml, streaming to the
# collectors in the given order (by default all of them, each node starting with the next
# collector, round robin, so that the nodes spread), failing over to the next one when one goes.
# (The node id is its certificate's: the configuration does not name it.)
grid_agent_config() {
  local name=$1 region=$2 site=$3 eps="" i
  shift 3
  local order=("$@")
  if [ ${#order[@]} -eq 0 ]; then
    local start=$((GRID_NEXT_START++ % GRID_COLLECTORS))
    for ((i = 0; i < GRID_COLLECTORS; i++)); do order+=($(((start + i) % GRID_COLLECTORS))); done
  fi
  for i in "${order[@]}"; do eps+="${eps:+, }\"127.0.0.1:${COL_PORT[$i]}\""; done
  cat >"$WORK/$name/agent.toml" <<TOML
[agent]
interval = $GRID_INTERVAL
[node]
region = "$region"
site = "$site"
[upstream]
endpoints = [$eps]
ca = "$WORK/pki/ca.crt"
[report]
keyframe_interval = 10
[control]
group = ""
TOML
}

# grid_agent_start NODE REGION SITE [ENDPOINT-INDEX...]: the node's key and certificate in its
# state directory ($WORK/NODE/state, made once), its control socket $WORK/NODE/sock.
grid_agent_start() {
  local node=$1
  if [ ! -d "$WORK/$node/state" ]; then
    mkdir -p "$WORK/$node"
    mkdir -m 700 "$WORK/$node/state"
    install -m 600 "$WORK/pki/nodes/$node.key" "$WORK/$node/state/node.key"
    install -m 644 "$WORK/pki/nodes/$node.crt" "$WORK/$node/state/node.crt"
  fi
  grid_agent_config "$@"
  grid_agent_run "$node"
}
# grid_agent_run NAME [--no-wait]: starts the agent whose directory is $WORK/NAME (config, state,
# socket) and waits for it to answer.
grid_agent_run() {
  local name=$1
  FAKE_NVML_SCENARIO=${GRID_SCENARIO[$name]:-/nonexistent} "$BIN/gridnoded" \
    --config "$WORK/$name/agent.toml" --state-dir "$WORK/$name/state" \
    --socket "$WORK/$name/sock" "${GRID_ROOTS[@]}" 2>>"$WORK/$name/agent.log" &
  APID[$name]=$!
  PIDS+=($!)
  [ "${2:-}" = --no-wait ] && return 0
  wait_for "agent $name answering" 20 grid_status "$name" ||
    { grid_show_log "$WORK/$name/agent.log"; return 1; }
}
grid_status() { "$BIN/gridnodectl" --socket "$WORK/$1/sock" status --json; }
# grid_acked NAME: the agent's acknowledged sequence number (a busy agent is asked again).
grid_acked() {
  local j
  for _ in $(seq 50); do
    if j=$(grid_status "$1" 2>/dev/null); then
      jq -r '.uplink.acked_seq // 0' <<<"$j"
      return
    fi
    sleep 0.1
  done
  echo "grid_acked: agent $1 does not answer" >&2
  return 1
}
grid_acked_above() { [ "$(grid_acked "$1")" -gt "$2" ]; }
grid_connected_to() { grid_status "$1" | jq -r '.uplink.connected_to // ""'; }
# grid_collector_of NAME: the index of the collector the agent streams to now, or nothing.
grid_collector_of() {
  local to i
  to=$(grid_connected_to "$1" 2>/dev/null) || return 0
  for ((i = 0; i < GRID_COLLECTORS; i++)); do
    [ "$to" = "127.0.0.1:${COL_PORT[$i]}" ] && echo "$i"
  done
  return 0
}

grid_capacity_start() {
  CAP_PORT=${CAP_PORT:-$(grid_port)}
  GRID_TAKEN+="$CAP_PORT "
  "$BIN/gridnode-collector" capacity --from "$NATS_URLS" --listen "127.0.0.1:$CAP_PORT" \
    2>>"$WORK/capacity.log" &
  CAP_PID=$!
  PIDS+=($!)
  CAP_URL=http://127.0.0.1:$CAP_PORT
  wait_for "capacity view answering" 60 curl -fsS "$CAP_URL/metrics" ||
    { grid_show_log "$WORK/capacity.log"; return 1; }
}
