#!/usr/bin/env bash
# systemd's notify protocol without systemd: the test binds its own NOTIFY_SOCKET (a datagram
# socket, as systemd does), runs gridnoded and gridnode-collector under it with WATCHDOG_USEC
# set, and checks READY=1 (only once the control socket listens), a readable STATUS=, periodic
# WATCHDOG=1, RELOADING=1 then READY=1 on SIGHUP, and STOPPING=1 on SIGTERM.
source "$(dirname "$0")/lib.sh"

SOCK=$WORK/c.sock
MSGS=$WORK/notify.log

cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.2
state_dir = "$WORK/state"
[control]
group = ""
TOML

# listen NOTIFY_SOCKET: starts the fake systemd, waits until it is bound.
listen() {
  rm -f "$MSGS"
  case $1 in /*) rm -f "$1" ;; esac  # the previous listener's socket file
  python3 "$SRC/tests/integration/notify_listener.py" "$1" "$MSGS" "$SOCK" &
  PIDS+=($!)
  LISTENER=$!
  wait_for "notify listener" 10 test -e "$MSGS"
}
has() { grep -q -- "$1" "$MSGS"; }
count() { grep -c -- "$1" "$MSGS" || true; }

# --- the agent, on a socket in the file system
listen "$WORK/notify.sock"
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=300000 \
  "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$SOCK" 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "READY=1" 10 has 'READY=1'
cat "$MSGS"
check "READY=1 arrives once the control socket exists" grep -q '^socket=yes READY=1' "$MSGS"
check "nothing before READY=1 but watchdog pings" \
  bash -c '! sed "/READY=1/,\$d" "$1" | grep -v "WATCHDOG=1\$" | grep -q .' _ "$MSGS"
check "READY=1 comes with a STATUS= a human can read" \
  grep -Eq 'READY=1\|STATUS=sampling [0-9]+ metrics from [0-9]+ of [0-9]+ drivers, no upstream configured, reports not signed' "$MSGS"
check "the agent logged ready" grep -q 'gridnoded: ready' "$WORK/agent.log"
wait_for "three watchdog pings" 5 bash -c '[ "$(grep -c "WATCHDOG=1" "$1")" -ge 3 ]' _ "$MSGS"
check "WATCHDOG=1 keeps coming (period WATCHDOG_USEC/2)" [ "$(count 'WATCHDOG=1')" -ge 3 ]

# --- SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again
before=$(wc -l <"$MSGS")
kill -HUP "$AGENT"
wait_for "READY=1 after the reload" 10 bash -c 'tail -n +"$(($2 + 1))" "$1" | grep -q "READY=1"' _ "$MSGS" "$before"
reload=$(tail -n +"$((before + 1))" "$MSGS" | grep -v 'WATCHDOG=1$')
echo "$reload"
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC" grep -Eq 'RELOADING=1\|.*MONOTONIC_USEC=[0-9]+' <<<"$reload"
check "SIGHUP: READY=1 after RELOADING=1" \
  bash -c 'grep -n . <<<"$1" | awk -F: "/RELOADING=1/{r=\$1} /READY=1/{if (r && \$1>r) ok=1} END{exit !ok}"' _ "$reload"
check "still answering after the reload" "$BIN/gridnodectl" --socket "$SOCK" status

# --- SIGTERM: STOPPING=1, and exit
kill -TERM "$AGENT"
wait "$AGENT" && rc=0 || rc=$?
check "SIGTERM: exit 0" [ "$rc" -eq 0 ]
check "SIGTERM: STOPPING=1" has 'STOPPING=1'
kill "$LISTENER"

# --- an abstract socket, and a watchdog that belongs to another process
listen "@gridnode-notify-test-$$"
NOTIFY_SOCKET=@gridnode-notify-test-$$ WATCHDOG_USEC=200000 WATCHDOG_PID=1 \
  "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$SOCK" 2>>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "READY=1 on an abstract socket" 10 has 'READY=1'
check "abstract NOTIFY_SOCKET: READY=1" has 'READY=1'
sleep 0.5  # a wrong answer would be pings: time for several
check "WATCHDOG_PID names another process: no WATCHDOG=1" [ "$(count 'WATCHDOG=1')" -eq 0 ]
kill -TERM "$AGENT"
wait "$AGENT" || true
kill "$LISTENER"

# --- the collector: READY=1 once it listens, STOPPING=1
"$BIN/gridnode-collector" pki init --dir "$WORK/pki" >/dev/null
PORT=$(free_port)
listen "$WORK/notify.sock"
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=300000 "$BIN/gridnode-collector" serve \
  --listen "127.0.0.1:$PORT" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/collector.crt" \
  --key "$WORK/pki/collector.key" --sink "$WORK/sink.jsonl" 2>"$WORK/collector.log" &
COLLECTOR=$!
PIDS+=("$COLLECTOR")
wait_for "collector READY=1" 10 has 'READY=1'
check "collector: READY=1 says where it listens" grep -q "READY=1|STATUS=listening on 127.0.0.1:$PORT" "$MSGS"
check "collector: it does listen by then" bash -c '(exec 3<>"/dev/tcp/127.0.0.1/$1")' _ "$PORT"
wait_for "collector watchdog" 5 has 'WATCHDOG=1'
check "collector: WATCHDOG=1" has 'WATCHDOG=1'

# --- an enrolled agent streaming to that collector: STATUS= follows the uplink and the spool
# (its own fake systemd; the collector's keeps listening)
COLLECTOR_MSGS=$MSGS
MSGS=$WORK/notify2.log
"$BIN/gridnoded" enroll --node-id notify-node --state-dir "$WORK/state" >/dev/null
"$BIN/gridnode-collector" pki sign --dir "$WORK/pki" --csr "$WORK/state/node.csr" \
  --out "$WORK/state/node.crt" >/dev/null
cat >>"$WORK/agent.toml" <<TOML
[upstream]
endpoints = ["127.0.0.1:$PORT"]
ca = "$WORK/pki/ca.crt"
TOML
listen "$WORK/notify2.sock"
NOTIFY_SOCKET=$WORK/notify2.sock "$BIN/gridnoded" --config "$WORK/agent.toml" --socket "$SOCK" \
  2>>"$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "STATUS= uplink connected" 15 has "uplink connected to 127.0.0.1:$PORT"
check "STATUS= names the collector the uplink is connected to" has "STATUS=.*uplink connected to 127.0.0.1:$PORT"
check "STATUS= tells the spool" grep -Eq 'STATUS=.*, spool [0-9]+ (B|KiB|MiB) unacked of [0-9]+ (B|KiB|MiB)' "$MSGS"
grep STATUS= "$MSGS" | tail -3
kill -TERM "$AGENT"
wait "$AGENT" || true

kill -TERM "$COLLECTOR"
wait "$COLLECTOR" || true
MSGS=$COLLECTOR_MSGS
check "collector: STOPPING=1" has 'STOPPING=1'
cat "$MSGS"

finish
