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
# system call gridnoded makes through start, queries, the watchdog, a reload and a stop (strace)
# must be in the unit's @system-service and in neither of the groups it takes out again.
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
denied_groups=$(sed -n 's/^SystemCallFilter=~//p' "$SRC/packaging/systemd/gridnoded.service")
for g in $denied_groups; do expand "$g"; done | sort -u >"$WORK/denied"
check "the unit's filter names groups systemd knows" test -s "$WORK/denied"

cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.1
state_dir = "$WORK/state"
[control]
group = "$(id -g)"
TOML
"$BIN/gridnoded" enroll --node-id syscalls --state-dir "$WORK/state" >/dev/null
# Nobody listens on NOTIFY_SOCKET: every notification fails, and that path is traced too.
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=100000 strace -f -qq -o "$WORK/trace" \
  "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$WORK/c.sock" 2>"$WORK/agent.log" &
TRACED=$!
PIDS+=("$TRACED")
wait_for "traced agent" 20 "$BIN/gridnodectl" --socket "$WORK/c.sock" status
"$BIN/gridnodectl" --socket "$WORK/c.sock" metrics >/dev/null
pid=$(pgrep -P "$TRACED" -x gridnoded || true)
kill -HUP "$pid"
sleep 0.5
kill -TERM "$pid"
wait "$TRACED" || true
sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/\(.*//' "$WORK/trace" |
  grep -E '^[a-z0-9_]+$' | sort -u >"$WORK/used"
echo "gridnoded made $(wc -l <"$WORK/used") distinct system calls"
check "strace saw the agent work" grep -qx epoll_wait "$WORK/used"
outside=$(comm -23 "$WORK/used" "$WORK/allowed" | grep -vx execve || true)  # strace's own exec
check "every system call is in @system-service${outside:+ (not: $outside)}" [ -z "$outside" ]
refused=$(comm -12 "$WORK/used" "$WORK/denied" | tr '\n' ' ')
check "none is in ${denied_groups}${refused:+ (but: $refused)}" [ -z "$refused" ]

finish
