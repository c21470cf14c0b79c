#!/usr/bin/env bash
# The local security policy with the real programs: `gridnodectl policy check`, a violation
# (chassis intrusion, a limit, a tampered file) carried as an event in a signed report that
# gridnode-collector verifies, the daemon's access rule refusing a group by peer credentials,
# `gridnodectl policy` / `events`, and signed bundles made with openssl alone (good, rollback,
# bad signature).
source "$(dirname "$0")/lib.sh"

install -m 755 "$BIN/gridnodectl" "$WORK/gridnodectl"
CTL=$WORK/gridnodectl
STATE=$WORK/state
SOCK=$WORK/c.sock
TECH=(setpriv --reuid=65534 --regid=65534 --groups=4242)
ADMIN=(setpriv --reuid=65534 --regid=65534 --groups=4243)
# nct6775's intrusion0_alarm reads 1.
ROOTS=(--sysfs-root "$FIXTURES/hwmon/nct6775/sys" --procfs-root "$FIXTURES/procfs/basic/proc")

# --- policy check: valid, invalid with its line, the shipped default
cat >"$WORK/policy.toml" <<TOML
[policy]
version = 1
[[limit]]
name = "any-fan"
metric = "node_hwmon_fan_rpm"
above = 1
[integrity]
[[integrity.watch]]
path = "$WORK/model.bin"
sha256 = "$(printf 'weights' | sha256sum | cut -d' ' -f1)"
TOML
printf 'weights' >"$WORK/model.bin"
out=$("$CTL" policy check "$WORK/policy.toml")
check "policy check: valid file" grep -q "policy.toml: valid, version 1" <<<"$out"
check "policy check: shipped default is valid" "$CTL" policy check "$SRC/packaging/policy.toml"
printf '[policy]\nversion = 1\n\n[[limit]]\nname = "x"\nmetric = "m"\nabove = "hot"\n' >"$WORK/bad.toml"
out=$("$CTL" policy check "$WORK/bad.toml" 2>&1) && rc=0 || rc=$?
check "policy check: invalid file fails" [ "$rc" -eq 1 ]
check "policy check: names the line" grep -q "bad.toml:7: limit.above: must be a number" <<<"$out"

# --- a violation ends up as an event in a signed report
"$BIN/gridnoded" enroll --node-id node-p --state-dir "$STATE" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=ca -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl x509 -req -in "$STATE/node.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -out "$STATE/node.crt" 2>/dev/null
printf 'poisoned' >"$WORK/model.bin"
printf '[agent]\ninterval = 0.1\n' >"$WORK/agent.toml"
"$BIN/gridnoded" --config "$WORK/agent.toml" --state-dir "$STATE" "${ROOTS[@]}" \
  --policy "$WORK/policy.toml" --once --report "$WORK/r.gnr" 2>"$WORK/once.log" >/dev/null
json=$("$BIN/gridnode-collector" inspect --cert "$STATE/node.crt" "$WORK/r.gnr")
check "report: verified" jq_is '.verified' <<<"$json"
check "report: intrusion event (rule, severity, subject)" jq_is \
  '[.events[] | select(.kind == "policy" and .source == "intrusion" and .severity == 1 and (.fields.subject | test("intrusion0")))] | length == 1' <<<"$json"
check "report: limit event with action and result" jq_is \
  '[.events[] | select(.source == "any-fan" and .fields.action == "report" and .fields.result == "reported")] | length >= 1' <<<"$json"
check "report: integrity event names the file" jq_is \
  "[.events[] | select(.source == \"integrity\" and .fields.subject == \"$WORK/model.bin\" and (.message | test(\"mismatch\")))] | length == 1" <<<"$json"
check "journal line for the violation" grep -q "policy: chassis intrusion alarm rule=intrusion" "$WORK/once.log"

# --- the daemon: access by group, policy and events commands
cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.2
[control]
group = "4242"
mode = "0666"
[policy]
file = "$WORK/access.toml"
bundle_dir = "$WORK/bundles"
key = "$WORK/policy-key.pem"
bundle_interval = 0.2
TOML
cat >"$WORK/access.toml" <<TOML
[[access.allow]]
group = "4242"
commands = ["status", "sensors"]
[[access.allow]]
group = "4243"
commands = ["*"]
TOML
mkdir -p "$WORK/bundles"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/policy-key.key" 2>/dev/null
openssl ec -in "$WORK/policy-key.key" -pubout -out "$WORK/policy-key.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/stranger.key" 2>/dev/null
make_bundle() {  # make_bundle KEY POLICY OUT: docs/policy.md's recipe, stock tools only
  local sig
  sig=$(openssl dgst -sha256 -sign "$1" "$2" | base64 -w0)
  { printf 'gridnode-policy-bundle 1\nsignature %s\n\n' "$sig"; cat "$2"; } >"$WORK/tmp.bundle"
  mv "$WORK/tmp.bundle" "$3"  # dropped whole, never seen half-written
}

"$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$SOCK" --state-dir "$WORK/dstate" \
  "${ROOTS[@]}" 2>>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "agent socket" 10 "$CTL" --socket "$SOCK" status
check "technician: status allowed" "${TECH[@]}" "$CTL" --socket "$SOCK" status
out=$("${TECH[@]}" "$CTL" --socket "$SOCK" policy 2>&1) && rc=0 || rc=$?
check "technician: policy refused" [ "$rc" -eq 1 ]
check "technician: told why" grep -q 'does not let user nobody run "policy"' <<<"$out"
out=$("${TECH[@]}" "$CTL" --socket "$SOCK" metrics 2>&1) && rc=0 || rc=$?
check "technician: metrics refused" [ "$rc" -eq 1 ]
check "admin (group not the socket's): policy allowed" "${ADMIN[@]}" "$CTL" --socket "$SOCK" policy
pol=$("$CTL" --socket "$SOCK" policy)
echo "$pol"
check "policy shows the source" grep -q "policy: $WORK/access.toml" <<<"$pol"
check "policy lists the intrusion rule" grep -q "^intrusion " <<<"$pol"
wait_for "intrusion event" 10 bash -c '"$1" --socket "$2" events --json | jq -e "[.[] | select(.rule == \"intrusion\")] | length == 1"' _ "$CTL" "$SOCK"
ev=$("$CTL" --socket "$SOCK" events --json)
check "events: the refusals are events" jq_is '[.[] | select(.rule == "access" and .result == "refused")] | length == 2' <<<"$ev"
check "events --since" bash -c '"$1" --socket "$2" events --since 1h | grep -q intrusion' _ "$CTL" "$SOCK"
check "journal: refusal logged" grep -q "policy: command .policy. refused by the local access rule rule=access" "$WORK/agent.log"

# --- signed bundles: a newer one applies, a rollback and a stranger's signature do not
printf '[policy]\nversion = 5\nname = "grid"\n[[access.allow]]\ngroup = "4242"\ncommands = ["*"]\n' >"$WORK/v5.toml"
make_bundle "$WORK/policy-key.key" "$WORK/v5.toml" "$WORK/bundles/v5.bundle"
check "bundle check with the key" "$CTL" policy check --key "$WORK/policy-key.pem" "$WORK/bundles/v5.bundle"
wait_for "bundle v5 applied" 10 bash -c '"$1" --socket "$2" policy --json | jq -e ".version == 5"' _ "$CTL" "$SOCK"
check "bundle: source named" jq_is '.source | test("^bundle ")' <<<"$("$CTL" --socket "$SOCK" policy --json)"
check "bundle: technician may now see the policy" "${TECH[@]}" "$CTL" --socket "$SOCK" policy
printf '[policy]\nversion = 4\n' >"$WORK/v4.toml"
make_bundle "$WORK/policy-key.key" "$WORK/v4.toml" "$WORK/bundles/v4.bundle"
printf '[policy]\nversion = 9\n' >"$WORK/v9.toml"
make_bundle "$WORK/stranger.key" "$WORK/v9.toml" "$WORK/bundles/v9.bundle"
wait_for "two bundles refused" 10 bash -c '"$1" --socket "$2" events --json | jq -e "[.[] | select(.rule == \"policy\" and .result == \"rejected\")] | length == 2"' _ "$CTL" "$SOCK"
ev=$("$CTL" --socket "$SOCK" events --json)
check "rollback refused" jq_is '[.[] | select(.rule == "policy" and (.details | test("rollback")))] | length == 1' <<<"$ev"
check "bad signature refused" jq_is '[.[] | select(.rule == "policy" and (.details | test("does not verify")))] | length == 1' <<<"$ev"
check "version 5 stays in force" jq_is '.version == 5' <<<"$("$CTL" --socket "$SOCK" policy --json)"
check "last good bundle kept in the state dir" cmp "$WORK/bundles/v5.bundle" "$WORK/dstate/policy.bundle"

kill "$AGENT"
wait "$AGENT" 2>/dev/null || true
finish
