# Shared by the integration tests that run a streaming agent: sourced after lib.sh, not run.
# The agent's control socket is $WORK/a.sock; start_agent also needs $STATE, $WORK/agent.toml
# and the ROOTS array.
CTL=("$BIN/gridnodectl" --socket "$WORK/a.sock")

# Starts gridnoded (extra flags in "$@") and waits for its control socket; sets AGENT.
start_agent() {
  "$BIN/gridnoded" --config "$WORK/agent.toml" --state-dir "$STATE" --socket "$WORK/a.sock" \
    "${ROOTS[@]}" "$@" 2>>"$WORK/agent.log" &
  AGENT=$!
  PIDS+=("$AGENT")
  wait_for "agent socket" 10 "${CTL[@]}" status
}
kill9() { { kill -9 "$1" && wait "$1"; } 2>/dev/null || true; }
status() { "${CTL[@]}" status --json; }
# The agent's acknowledged sequence number. A busy agent may miss one query: asked again for up
# to 5 s, then a loud failure (a bare failing pipeline would end a `set -e` script silently,
# as `before=$(acked)` did now and then in the cluster test).
acked() {
  local j
  for _ in $(seq 50); do
    if j=$(status 2>/dev/null); then
      jq -r '.uplink.acked_seq // 0' <<<"$j"
      return
    fi
    sleep 0.1
  done
  echo "acked: the agent does not answer on $WORK/a.sock" >&2
  return 1
}
acked_above() { [ "$(acked)" -gt "$1" ]; }
