# Shared by the JetStream integration tests: sourced after lib.sh, not run.
source "$(dirname "${BASH_SOURCE[0]}")/agent_lib.sh"

# node-1's PKI and state directory ($P, $STATE), two collector ports ($PORT_A, $PORT_B), and an
# agent configuration ($WORK/agent.toml) that streams to either of them, failing over in turn.
setup_failover_agent() {
  P=$WORK/pki
  "$BIN/gridnode-collector" pki init --dir "$P" --nodes node-1 >/dev/null
  STATE=$WORK/state
  mkdir -m 700 "$STATE"
  install -m 600 "$P/nodes/node-1.key" "$STATE/node.key"
  install -m 644 "$P/nodes/node-1.crt" "$STATE/node.crt"
  PORT_A=$(free_port)
  PORT_B=$(free_port)
  while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
  cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.05
[node]
region = "east"
site = "dc1"
[upstream]
endpoints = ["127.0.0.1:$PORT_A", "127.0.0.1:$PORT_B"]
ca = "$P/ca.crt"
[report]
keyframe_interval = 10
TOML
}

