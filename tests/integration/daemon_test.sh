#!/usr/bin/env bash
# gridnoded and gridnodectl as real processes over a real Unix socket: technicians' queries,
# a refused stranger, SIGHUP reload (good and bad), gridnodectl reload and its exit status (what
# systemctl reload runs), SIGTERM within a second, bad configs.
source "$(dirname "$0")/lib.sh"

# Another user must be able to execute the client, whatever the checkout's permissions.
install -m 755 "$BIN/gridnodectl" "$WORK/gridnodectl"
CTL=$WORK/gridnodectl
SOCK=$WORK/c.sock
GROUP_GID=4242  # numeric: the test creates no system group
STRANGER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
MEMBER=(setpriv --reuid=65534 --regid=65534 --groups=$GROUP_GID)

# 0666 so that a stranger reaches the agent and is refused by its credential check (with the
# default 0660 the kernel refuses them before the agent can log it; tested further down).
cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.1
[control]
group = "$GROUP_GID"
mode = "0666"
TOML

start_agent() {
  "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$SOCK" "$@" 2>>"$WORK/agent.log" &
  AGENT=$!
  PIDS+=("$AGENT")
  wait_for "agent socket" 10 "$CTL" --socket "$SOCK" status
}

# --- not running: one clear line, no stack trace
out=$("$CTL" --socket "$SOCK" status 2>&1) && rc=0 || rc=$?
check "not running: exit 1" [ "$rc" -eq 1 ]
check "not running: one line that says so" bash -c '[ "$(wc -l <<<"$1")" -eq 1 ] && grep -q "is the agent running" <<<"$1"' _ "$out"

# --- a bad config stops the agent from starting, naming key and line
printf '[agent]\ninterval = 0.1\nbogus = 1\n' >"$WORK/bad.toml"
out=$("$BIN/gridnoded" --config "$WORK/bad.toml" --socket "$SOCK" 2>&1) && rc=0 || rc=$?
check "bad config: non-zero exit" [ "$rc" -ne 0 ]
check "bad config: names file, line and key" grep -q "bad.toml:3: unknown key agent.bogus" <<<"$out"
out=$("$BIN/gridnoded" --config "$WORK/missing.toml" 2>&1) && rc=0 || rc=$?
check "explicit missing config: refused" [ "$rc" -ne 0 ]
out=$("$BIN/gridnoded" --interval fast --once 2>&1) && rc=0 || rc=$?
check "bad --interval: refused with reason" grep -q "interval" <<<"$out"

# --- running
start_agent
check "socket mode is 0666 as configured" [ "$(stat -c %a "$SOCK")" = 666 ]
check "socket group is the configured gid" [ "$(stat -c %g "$SOCK")" = $GROUP_GID ]
status=$("$CTL" --socket "$SOCK" status)
echo "$status"
check "status names the version" grep -q "^gridnoded " <<<"$status"
# Every driver the build has (the registry's, as --no-collector.NAME lists them).
mapfile -t all_drivers < <("$BIN/gridnoded" --help 2>&1 | sed -n 's/^ *--no-collector\.\([a-z0-9_]*\) .*/\1/p')
check "the build has the drivers this test knows, and more" bash -c 'for d in procfs hwmon thermal powercap nvml amdgpu edac nvme mdadm infiniband pcie filesystem textfile; do grep -qx "$d" <<<"$1" || exit 1; done' _ "$(printf '%s\n' "${all_drivers[@]}")"
check "status lists every driver" bash -c 'shift; for d in "$@"; do grep -q "^$d " <<<"$0" || exit 1; done' "$status" _ "${all_drivers[@]}"
wait_for "first sweep" 10 bash -c '[ "$("$1" --socket "$2" status --json | jq -r ".rounds >= 1")" = true ]' _ "$CTL" "$SOCK"
json=$("$CTL" --socket "$SOCK" status --json)
check "status --json has drivers" jq_is ".drivers | length == ${#all_drivers[@]}" <<<"$json"
check "procfs is up on a real host" jq_is '.drivers[] | select(.name=="procfs") | .state == "up"' <<<"$json"
"$CTL" --socket "$SOCK" sensors >"$WORK/sensors.txt"
check "sensors answers" test -s "$WORK/sensors.txt"
check "sensors --json is a JSON array" bash -c '[ "$("$1" --socket "$2" sensors --json | jq -r "type == \"array\"")" = true ]' _ "$CTL" "$SOCK"
"$CTL" --socket "$SOCK" metrics >"$WORK/metrics.prom"
check "metrics has our health" grep -q '^gridnode_driver_up{driver="procfs"} 1$' "$WORK/metrics.prom"
check "metrics parses (promtool: no parse error)" bash -c '! promtool check metrics <"$1" 2>&1 | grep -q "parsing error"' _ "$WORK/metrics.prom"
check "--version" bash -c '"$1/gridnoded" --version | grep -q "^gridnoded [0-9]"' _ "$BIN"

# --- who may ask
out=$("${STRANGER[@]}" "$CTL" --socket "$SOCK" status 2>&1) && rc=0 || rc=$?
echo "stranger got: $out"
check "stranger: exit 1" [ "$rc" -eq 1 ]
check "stranger: told why in one line" bash -c '[ "$(wc -l <<<"$1")" -eq 1 ] && grep -q "permission denied: user nobody is not root and not in group $2" <<<"$1"' _ "$out" "$GROUP_GID"
check "stranger: the agent logged the attempt" grep -q 'control: request refused uid=65534' "$WORK/agent.log"
check "stranger: an access event, as a refused command raises" \
  grep -q 'policy: refused at the control socket: permission denied: user nobody.* rule=access' "$WORK/agent.log"
check "group member: may ask" "${MEMBER[@]}" "$CTL" --socket "$SOCK" status
# A hostile client: garbage, an unknown command, an oversized line; the agent keeps answering.
reply=$(printf 'not json\n' | timeout 5 socat - "UNIX-CONNECT:$SOCK" 2>/dev/null || true)
if command -v socat >/dev/null; then
  check "garbage: malformed request answer" grep -q "malformed request" <<<"$reply"
fi
check "still answering after hostile input" "$CTL" --socket "$SOCK" status

# --- SIGHUP: a bad file is rejected and the agent keeps running; a good one applies
printf '[agent]\ninterval = "often"\n' >"$WORK/agent.toml"
kill -HUP "$AGENT"
wait_for "reload rejected" 5 grep -q "reload rejected" "$WORK/agent.log"
check "bad reload: still answering" "$CTL" --socket "$SOCK" status
check "bad reload: kept the old interval" bash -c '[ "$("$1" --socket "$2" status --json | jq -r ".interval_seconds == 0.1")" = true ]' _ "$CTL" "$SOCK"
printf '[agent]\ninterval = 0.5\n[control]\ngroup = "%s"\nmode = "0666"\n' $GROUP_GID >"$WORK/agent.toml"
kill -HUP "$AGENT"
wait_for "reloaded" 5 grep -q "gridnoded: reloaded" "$WORK/agent.log"
check "good reload: new interval" bash -c '[ "$("$1" --socket "$2" status --json | jq -r ".interval_seconds == 0.5")" = true ]' _ "$CTL" "$SOCK"

# --- gridnodectl reload (systemd's ExecReload=): the same reload, and its outcome as the exit
interval_is() {
  [ "$("$CTL" --socket "$SOCK" status --json | jq -r ".interval_seconds == $1")" = true ]
}
printf '[agent]\ninterval = 0.25\n[control]\ngroup = "%s"\nmode = "0666"\n' $GROUP_GID >"$WORK/agent.toml"
out=$("$CTL" --socket "$SOCK" reload 2>&1) && rc=0 || rc=$?
echo "reload: $out"
check "gridnodectl reload: exit 0" [ "$rc" -eq 0 ]
check "gridnodectl reload: says so, naming the file" grep -qx "reloaded $WORK/agent.toml" <<<"$out"
check "gridnodectl reload: new interval" interval_is 0.25
printf '[agent]\ninterval = 0.5\nbogus = 1\n[control]\ngroup = "%s"\nmode = "0666"\n' $GROUP_GID >"$WORK/agent.toml"
out=$("$CTL" --socket "$SOCK" reload 2>&1) && rc=0 || rc=$?
echo "bad reload: $out"
check "gridnodectl reload of a bad file: exit 1" [ "$rc" -eq 1 ]
check "gridnodectl reload of a bad file: the daemon's reason, file, line and key" \
  grep -q "^gridnodectl: reload refused: $WORK/agent.toml:3: unknown key agent.bogus" <<<"$out"
check "gridnodectl reload of a bad file: the daemon keeps running" kill -0 "$AGENT"
check "gridnodectl reload of a bad file: on the old config" interval_is 0.25
out=$("$CTL" --socket "$SOCK" reload --json 2>&1) && rc=0 || rc=$?
check "gridnodectl reload --json of a bad file: exit 1, the answer as JSON" \
  bash -c '[ "$1" -eq 1 ] && jq -e ".ok == false and (.error | contains(\"unknown key agent.bogus\"))" <<<"$2" >/dev/null' _ "$rc" "$out"
# A change that waits for a restart is said, and the rest applies.
printf '[agent]\ninterval = 0.2\n[node]\nrack = "r12"\n[control]\ngroup = "%s"\nmode = "0666"\n' $GROUP_GID >"$WORK/agent.toml"
out=$("$CTL" --socket "$SOCK" reload 2>&1) && rc=0 || rc=$?
check "gridnodectl reload: exit 0 after the fix" [ "$rc" -eq 0 ]
check "gridnodectl reload: a restart-only key is named" grep -q "^note: node changed and takes effect on restart" <<<"$out"
check "gridnodectl reload: the rest applied" interval_is 0.2
# The socket's group may read but not reload (no [access] grant names it).
out=$("${MEMBER[@]}" "$CTL" --socket "$SOCK" reload 2>&1) && rc=0 || rc=$?
echo "member reload: $out"
check "group member: reload refused, exit 1" [ "$rc" -eq 1 ]
check "group member: told why" grep -q 'permission denied: the policy does not let user nobody run "reload"' <<<"$out"

# --- SIGTERM: gone within a second, socket removed
t0=$(date +%s%N)
kill -TERM "$AGENT"
wait "$AGENT" && rc=0 || rc=$?
t1=$(date +%s%N)
check "SIGTERM: clean exit" [ "$rc" -eq 0 ]
check "SIGTERM: stopped within a second ($(((t1 - t0) / 1000000)) ms)" [ $(((t1 - t0) / 1000000)) -lt 1000 ]
check "SIGTERM: socket removed" [ ! -e "$SOCK" ]

# --- default mode 0660: the kernel turns a stranger away, and the client says so plainly
printf '[control]\ngroup = "%s"\n' $GROUP_GID >"$WORK/agent.toml"
start_agent
check "default socket mode is 0660" [ "$(stat -c %a "$SOCK")" = 660 ]
out=$("${STRANGER[@]}" "$CTL" --socket "$SOCK" status 2>&1) && rc=0 || rc=$?
echo "stranger got: $out"
check "0660 stranger: one-line refusal" bash -c '[ "$1" -eq 1 ] && grep -q "not allowed to use" <<<"$2"' _ "$rc" "$out"
check "0660 member: may ask" "${MEMBER[@]}" "$CTL" --socket "$SOCK" status
# A second agent on the same socket refuses to start instead of stealing it.
out=$("$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$SOCK" 2>&1) && rc=0 || rc=$?
check "second agent refused" bash -c '[ "$1" -ne 0 ] && grep -q "already listening" <<<"$2"' _ "$rc" "$out"
# kill -9 leaves a stale socket; the next start replaces it.
kill -KILL "$AGENT"
wait "$AGENT" 2>/dev/null || true
check "stale socket left by kill -9" [ -S "$SOCK" ]
start_agent
check "restart after kill -9 answers" "$CTL" --socket "$SOCK" status

# --- open files: the soft limit is raised to the hard one (systemd's default soft 1024 is less
# than a GPU node's kept-open sysfs files)
prlimit --nofile=256:4096 "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$WORK/nofile.sock" \
  --state-dir "$WORK/nofile-state" 2>>"$WORK/agent.log" &
NOFILE_PID=$!
PIDS+=("$NOFILE_PID")
wait_for "agent with 256 open files" 10 "$CTL" --socket "$WORK/nofile.sock" status
check "open files: soft limit raised to the hard one" \
  bash -c '[ "$(awk "/^Max open files/ {print \$4}" /proc/$1/limits)" = 4096 ]' _ "$NOFILE_PID"
kill "$NOFILE_PID"

finish
