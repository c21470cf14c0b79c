#!/usr/bin/env bash
# The shipped units' exposure, as systemd scores it (systemd-analyze security, offline: no
# systemd needs to run): each must stay at or below 2.0 ("OK"). packaging/security.sh measures
# node_exporter's and collectd's stock units beside ours for the README.
source "$(dirname "$0")/lib.sh"

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
  exit 77
fi
for unit in gridnoded.service gridnode-collector.service; do
  cp "$SRC/packaging/systemd/$unit" "$WORK/$unit"
  out=$(systemd-analyze security --offline=yes --no-pager "$WORK/$unit" 2>&1) || true
  score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  echo "$unit: exposure ${score:-?}"
  check "$unit: scored" [ -n "$score" ]
  check "$unit: exposure $score <= 2.0" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
  # verify catches what security does not: unknown directives, bad paths, typos.
  # (The unit's binary is not installed here: that one complaint is expected.)
  verify=$(systemd-analyze verify --man=no "$WORK/$unit" 2>&1 | grep -v "is not executable\|No such file or directory\|Failed to prepare filename\|not found in the unit file search path" || true)
  check "$unit: systemd-analyze verify has nothing else to say" [ -z "$verify" ]
  [ -z "$verify" ] || echo "$verify"
done

# The system call filter cannot be tried without systemd, but what it would refuse can: every
# system call gridnoded and gridnode-collector make while the agent starts, streams to the
# collector, answers queries, pings the watchdog, reloads and stops (strace)
# must be in its unit's @system-service and in neither of the groups the unit takes out again.
if ! command -v strace >/dev/null || ! strace -f -qq -o /dev/null true 2>/dev/null; then
  echo "strace missing or not allowed to trace here: system call check skipped"
  finish
  exit
fi
# A group's system calls, nested groups expanded.
expand() {
  local e
  for e in $(systemd-analyze --no-pager syscall-filter "$1" </dev/null | sed -n '2,$p' |
    grep -E '^[[:space:]]+[@a-z0-9_-]+$'); do
    case $e in @*) expand "$e" ;; *) echo "$e" ;; esac
  done
}
expand @system-service | sort -u >"$WORK/allowed"
# System calls the unit refuses on purpose, with the program's answer to the refusal tested
# below: the timex driver's adjtimex(2) (glibc calls clock_adjtime), which ProtectClock=yes
# filters with EPERM even as a read; timex then reports itself absent with the reason.
REFUSED_BY_DESIGN="clock_adjtime adjtimex"
# check_syscalls UNIT TRACE: what the traced program called against UNIT's filter.
check_syscalls() {
  local unit=$1 trace=$2 groups outside refused
  groups=$(sed -n 's/^SystemCallFilter=~//p' "$SRC/packaging/systemd/$unit")
  for g in $groups; do expand "$g"; done | sort -u >"$WORK/denied"
  check "$unit: its filter names groups systemd knows" test -s "$WORK/denied"
  sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/\(.*//' "$trace" |
    grep -E '^[a-z0-9_]+$' | sort -u | grep -vxF -f <(tr ' ' '\n' <<<"$REFUSED_BY_DESIGN") \
    >"$WORK/used"
  echo "$unit: the program made $(wc -l <"$WORK/used") distinct system calls"
  check "$unit: strace saw the program work" grep -qx epoll_wait "$WORK/used"
  outside=$(comm -23 "$WORK/used" "$WORK/allowed" | grep -vx execve | tr '\n' ' ' || true)
  check "$unit: every system call is in @system-service${outside:+ (not: $outside)}" [ -z "$outside" ]
  refused=$(comm -12 "$WORK/used" "$WORK/denied" | tr '\n' ' ')
  check "$unit: none is in ${groups}${refused:+ (but: $refused)}" [ -z "$refused" ]
}

# The collector, traced, with an agent streaming signed reports to it.
"$BIN/gridnode-collector" pki init --dir "$WORK/pki" >/dev/null
"$BIN/gridnoded" enroll --node-id syscalls --state-dir "$WORK/state" >/dev/null
"$BIN/gridnode-collector" pki sign --dir "$WORK/pki" --csr "$WORK/state/node.csr" \
  --out "$WORK/state/node.crt" >/dev/null
PORT=$(free_port)
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=100000 strace -f -qq -o "$WORK/collector.trace" \
  "$BIN/gridnode-collector" serve --listen "127.0.0.1:$PORT" --ca "$WORK/pki/ca.crt" \
  --cert "$WORK/pki/collector.crt" --key "$WORK/pki/collector.key" --sink "$WORK/sink.jsonl" \
  2>"$WORK/collector.log" &
TRACED_COLLECTOR=$!
PIDS+=("$TRACED_COLLECTOR")
wait_for "traced collector" 20 bash -c '(exec 3<>"/dev/tcp/127.0.0.1/$1")' _ "$PORT"

# The scrape endpoint listens too (AF_INET, bind, listen, accept4 under the unit's filter).
WEB_PORT=$(free_port)
cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.1
state_dir = "$WORK/state"
[control]
group = "$(id -g)"
[upstream]
endpoints = ["127.0.0.1:$PORT"]
ca = "$WORK/pki/ca.crt"
[web]
listen_addresses = ["127.0.0.1:$WEB_PORT"]
TOML
# Nobody listens on NOTIFY_SOCKET: every notification fails, and that path is traced too. The
# open-file limit is the unit's LimitNOFILE= (soft = hard), as under the unit.
NOFILE=$(sed -n 's/^LimitNOFILE=//p' "$SRC/packaging/systemd/gridnoded.service")
check "gridnoded.service: LimitNOFILE= sets one limit" grep -qE '^[0-9]+$' <<<"$NOFILE"
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=100000 strace -f -qq -o "$WORK/agent.trace" \
  prlimit --nofile="$NOFILE:$NOFILE" "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$WORK/c.sock" 2>"$WORK/agent.log" &
TRACED=$!
PIDS+=("$TRACED")
wait_for "traced agent" 20 "$BIN/gridnodectl" --socket "$WORK/c.sock" status
wait_for "reports reach the collector" 20 test -s "$WORK/sink.jsonl"
"$BIN/gridnodectl" --socket "$WORK/c.sock" metrics >/dev/null
check "the traced agent answers a scrape (gzip)" curl -sf -H 'Accept-Encoding: gzip' -o /dev/null \
  "http://127.0.0.1:$WEB_PORT/metrics"
pid=$(pgrep -P "$TRACED" -x gridnoded || true)
kill -HUP "$pid"
sleep 0.5
kill -TERM "$pid"
wait "$TRACED" || true
kill -TERM "$(pgrep -P "$TRACED_COLLECTOR" -x gridnode-collec || true)"
wait "$TRACED_COLLECTOR" || true

check_syscalls gridnoded.service "$WORK/agent.trace"
# What the unit's filter answers the timex driver (EPERM), injected: the driver is absent with
# the reason (a packaged agent is denied it on purpose: no error counted each sweep, no alert),
# and no values, never garbage.
check "gridnoded.service: ProtectClock=yes is what refuses adjtimex" \
  grep -qx 'ProtectClock=yes' "$SRC/packaging/systemd/gridnoded.service"
printf '[agent]\ndrivers = ["timex"]\n' >"$WORK/timex.toml"
strace -f -qq -o /dev/null -e inject=clock_adjtime:error=EPERM -e inject=adjtimex:error=EPERM \
  "$BIN/gridnoded" --once --json --config "$WORK/timex.toml" >"$WORK/timex.json" 2>"$WORK/timex.err" || true
check "timex under EPERM: the driver is absent" \
  jq_is '.status.drivers[] | select(.name=="timex") | .state == "absent"' "$WORK/timex.json"
check "timex under EPERM: no node_timex_ value" \
  jq_is '[.samples[] | select(.name | startswith("node_timex_"))] | length == 0' "$WORK/timex.json"
check "timex under EPERM: the status says what refused it" \
  jq_is '.status.drivers[] | select(.name=="timex") | .error | contains("ProtectClock=yes")' "$WORK/timex.json"
check_syscalls gridnode-collector.service "$WORK/collector.trace"

finish
