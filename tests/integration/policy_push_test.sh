#!/usr/bin/env bash
# Signed policy bundles pushed by gridnode-collector over the uplink's mutual TLS (docs/protocol.md
# §6b), with the real programs on loopback and bundles made with openssl alone: v1 applied, the
# collector restarted with v2 applied, with v1 again refused as a rollback (an event in
# `gridnodectl events` and, signed, in the collector's sink), the agent restarted on the kept v2,
# an agent without a policy key refusing, a SIGHUP re-read (a bad file kept out, a good one
# pushed), a bundle the collector cannot verify refused at start, and a client without the
# policy ALPN (an older agent) never sent the new frames.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_lib.sh"

COL=$BIN/gridnode-collector
P=$WORK/pki
"$COL" pki init --dir "$P" --nodes node-1,node-2 >/dev/null
STATE=$WORK/state
mkdir -m 700 "$STATE"
install -m 600 "$P/nodes/node-1.key" "$STATE/node.key"
install -m 644 "$P/nodes/node-1.crt" "$STATE/node.crt"
PORT=$(free_port)
SINK=$WORK/sink.jsonl
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/policy-key.key" 2>/dev/null
openssl ec -in "$WORK/policy-key.key" -pubout -out "$WORK/policy-key.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/stranger.key" 2>/dev/null
cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.1
[upstream]
endpoints = ["127.0.0.1:$PORT"]
ca = "$P/ca.crt"
[policy]
key = "$WORK/policy-key.pem"
TOML
ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")

make_bundle() {  # make_bundle KEY POLICY OUT: docs/policy.md's recipe, stock tools only
  local sig
  sig=$(openssl dgst -sha256 -sign "$1" "$2" | base64 -w0)
  { printf 'gridnode-policy-bundle 1\nsignature %s\n\n' "$sig"; cat "$2"; } >"$WORK/tmp.bundle"
  mv "$WORK/tmp.bundle" "$3"
}
for v in 1 2 3; do
  printf '[policy]\nversion = %s\nname = "grid-v%s"\n' "$v" "$v" >"$WORK/v$v.toml"
  make_bundle "$WORK/policy-key.key" "$WORK/v$v.toml" "$WORK/v$v.bundle"
done
make_bundle "$WORK/stranger.key" "$WORK/v3.toml" "$WORK/stranger.bundle"

start_collector() {  # start_collector BUNDLE
  "$COL" serve --listen "127.0.0.1:$PORT" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$SINK" --policy-key "$WORK/policy-key.pem" \
    --policy-bundle "$1" 2>>"$WORK/collector.log" &
  COLLECTOR=$!
  PIDS+=("$COLLECTOR")
  wait_for "collector listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"
}
stop_collector() { kill -TERM "$COLLECTOR" && wait "$COLLECTOR" 2>/dev/null || true; }
policy() { "${CTL[@]}" policy --json; }
policy_is() { [ "$(policy | jq -r '"\(.version) \(.source)"')" = "$1" ]; }
events() { "${CTL[@]}" events --json; }
refusals() {  # refusals [NEEDLE]: the policy events that refused a bundle
  events | jq "[.[] | select(.rule == \"policy\" and .result == \"rejected\" and (.details | test(\"${1:-.}\")))] | length"
}

# --- a bundle the collector cannot verify: it does not start
"$COL" serve --listen "127.0.0.1:$PORT" --ca "$P/ca.crt" --cert "$P/collector.crt" \
  --key "$P/collector.key" --sink "$SINK" --policy-key "$WORK/policy-key.pem" \
  --policy-bundle "$WORK/stranger.bundle" >"$WORK/refused.out" 2>&1 && rc=0 || rc=$?
check "stranger's bundle: the collector refuses to start (exit $rc)" [ "$rc" -eq 2 ]
check "stranger's bundle: the error says why" \
  grep -q "policy-bundle $WORK/stranger.bundle: signature does not verify with the policy key" "$WORK/refused.out"
"$COL" serve --ca "$P/ca.crt" --cert "$P/collector.crt" --key "$P/collector.key" --sink "$SINK" \
  --policy-bundle "$WORK/v1.bundle" >"$WORK/nokey.out" 2>&1 && rc=0 || rc=$?
check "a bundle without --policy-key is a usage error" bash -c "[ $rc -ne 0 ] && grep -q 'policy-key' '$WORK/nokey.out'"

# --- v1 pushed and applied
cp "$WORK/v1.bundle" "$WORK/push.bundle"
start_collector "$WORK/push.bundle"
start_agent
wait_for "v1 applied from the uplink" 20 policy_is "1 uplink 127.0.0.1:$PORT"
check "gridnodectl policy: source and version" \
  bash -c "'${CTL[0]}' --socket '$WORK/a.sock' policy | grep -q '^policy: uplink 127.0.0.1:$PORT' && '${CTL[0]}' --socket '$WORK/a.sock' policy | grep -q '^version 1 (grid-v1)'"
check "status: the uplink took one push" jq_is '.uplink.policy_pushes_total == 1 and .uplink.policy_frames' <<<"$(status)"
wait_for "collector logs the answer" 10 grep -q "policy applied node=node-1 version=1" "$WORK/collector.log"

# --- restarted with v2: applied
stop_collector
cp "$WORK/v2.bundle" "$WORK/push.bundle"
start_collector "$WORK/push.bundle"
wait_for "v2 applied" 20 policy_is "2 uplink 127.0.0.1:$PORT"
check "the applied event names the collector" jq_is \
  "[.[] | select(.rule == \"policy\" and .result == \"applied\" and .subject == \"uplink 127.0.0.1:$PORT\")] | length == 2" <<<"$(events)"

# --- restarted with v1 again: a rollback, refused; v2 stays
stop_collector
cp "$WORK/v1.bundle" "$WORK/push.bundle"
start_collector "$WORK/push.bundle"
wait_for "rollback refused" 20 bash -o pipefail -c "'${CTL[0]}' --socket '$WORK/a.sock' events --json | jq -e '[.[] | select(.rule == \"policy\" and (.details | test(\"rollback\")))] | length == 1'"
check "rollback: version 2 stays in force" policy_is "2 uplink 127.0.0.1:$PORT"
check "rollback: one event, naming both versions" [ "$(refusals 'version 1 is not newer than version 2 in force \\(rollback\\)')" -eq 1 ]
wait_for "collector logs the refusal" 10 grep -q "policy refused node=node-1 version=2 .*rollback" "$WORK/collector.log"
# The event travels in the next signed report, which the collector verifies and stores.
in_sink() { jq -c 'select(.type == "report" and .node == "node-1") | .events[]? | select(.kind == "policy")' "$SINK" | grep -q rollback; }
wait_for "the rollback event in the collector's sink" 20 in_sink
check "the rollback event is in the sink as a policy event" in_sink

# --- the agent restarted: the kept v2; the collector remembers that node-1 running v2 refused
# v1 and does not push it again (it would only give another refusal event)
pushes() { grep -c "policy bundle pushed node=node-1 " "$WORK/collector.log"; }
pushed_before=$(pushes)
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
start_agent
check "restart: v2 from the state dir" policy_is "2 bundle $STATE/policy.bundle"
wait_for "restart: the collector does not push v1 again" 20 \
  grep -q "policy bundle not pushed again: the node refused it node=node-1" "$WORK/collector.log"
check "restart: no refusal event this time ($(refusals rollback))" [ "$(refusals rollback)" -eq 0 ]
check "restart: nothing pushed to node-1 ($pushed_before pushes before, $(pushes) after)" [ "$(pushes)" -eq "$pushed_before" ]
# --- SIGHUP forgets refusals: the agent's next session is pushed v1 again, and refuses it again
kill -HUP "$COLLECTOR"
wait_for "reload: unchanged" 10 grep -q "reload: policy bundle unchanged" "$WORK/collector.log"
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
start_agent
wait_for "after SIGHUP: v1 refused again" 20 bash -o pipefail -c "'${CTL[0]}' --socket '$WORK/a.sock' events --json | jq -e '[.[] | select(.rule == \"policy\" and (.details | test(\"rollback\")))] | length == 1'"
check "after SIGHUP: still v2" jq_is '.version == 2' <<<"$(policy)"

# --- an agent without a [policy] key refuses what is pushed
mkdir -m 700 "$WORK/n2"
install -m 600 "$P/nodes/node-2.key" "$WORK/n2/node.key"
install -m 644 "$P/nodes/node-2.crt" "$WORK/n2/node.crt"
CTL2=("$BIN/gridnodectl" --socket "$WORK/n2.sock")
"$BIN/gridnoded" --state-dir "$WORK/n2" --socket "$WORK/n2.sock" "${ROOTS[@]}" --interval 0.1 \
  --upstream "127.0.0.1:$PORT" --ca "$P/ca.crt" 2>>"$WORK/n2.log" &
AGENT2=$!
PIDS+=("$AGENT2")
wait_for "node-2 refuses the push" 20 bash -o pipefail -c "'${CTL2[0]}' --socket '$WORK/n2.sock' events --json | jq -e '[.[] | select(.rule == \"policy\" and .result == \"rejected\" and (.details | test(\"no policy key is configured\")))] | length == 1'"
check "node-2: the built-in default stays" jq_is '.source == "built-in default"' <<<"$("${CTL2[@]}" policy --json)"
wait_for "collector logs node-2's refusal" 10 grep -q "policy refused node=node-2 version=0 .*no policy key" "$WORK/collector.log"

# --- SIGHUP: a file that does not verify is kept out, a good newer one goes to every agent
cp "$WORK/stranger.bundle" "$WORK/push.bundle"
kill -HUP "$COLLECTOR"
wait_for "reload refused" 10 grep -q "reload: policy bundle refused, keeping the one in force" "$WORK/collector.log"
check "reload refused: the collector still serves" kill -0 "$COLLECTOR"
cp "$WORK/v3.bundle" "$WORK/push.bundle"
kill -HUP "$COLLECTOR"
wait_for "v3 applied after SIGHUP" 20 policy_is "3 uplink 127.0.0.1:$PORT"
wait_for "node-2 refuses v3 too" 20 bash -c "[ \$('${CTL2[0]}' --socket '$WORK/n2.sock' events --json | jq '[.[] | select(.rule == \"policy\" and .result == \"rejected\")] | length') -ge 2 ]"

stops_cleanly() {  # PID NAME: SIGTERM ends it with status 0 while its uplink is connected (a
  # handler that ran after the uplink was destroyed aborted the ASan build here)
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  check "$2 stops cleanly on SIGTERM (exit $rc)" [ "$rc" -eq 0 ]
}
stops_cleanly "$AGENT2" node-2

# --- an agent without the policy ALPN (as before policy frames) is never sent them: a policy
# frame from it is an unexpected frame, as it is for an older collector
HC=(python3 "$SRC/tests/integration/hostile_client.py" 127.0.0.1 "$PORT" "$P/ca.crt")
zeros=$(printf '00%.0s' $(seq 32))
status_hex="1544""0100${zeros}00${zeros}00"  # kind 21, 68 bytes: in force, version 0
out=$("${HC[@]}" "$P/nodes/node-2.crt" "$P/nodes/node-2.key" node-2 "rawhex:$status_hex")
check "no ALPN: only welcome, no bundle ($out)" [ "$out" = welcome ]
check "no ALPN: policy_status is an unexpected frame" grep -q "node-2: unexpected frame kind 21" "$WORK/collector.log"

stops_cleanly "$AGENT" node-1

# --- the stats line (logged at stop too) counts nodes per policy version, as each last said
stop_collector
check "stats: nodes per policy version" grep -q "stats .*policy_versions=0:1,3:1 policy_refusals=[1-9]" "$WORK/collector.log"
finish
