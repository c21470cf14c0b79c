#!/usr/bin/env bash
# The demo behind `./gridnode.sh demo`: the agent samples this host for a few seconds in a
# throw-away directory (no root paths touched), and a technician asks it what it sees.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
RUN=$(mktemp -d "${TMPDIR:-/tmp}/gridnode-demo-XXXXXX")
SOCK=$RUN/control.sock
AGENT=
cleanup() {
  [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cat >"$RUN/agent.toml" <<TOML
[agent]
interval = 1.0
state_dir = "$RUN/state"
[control]
socket = "$SOCK"
group = ""  # root and the agent's own user only: a demo needs no group
TOML

echo "Starting gridnoded on this host (config $RUN/agent.toml, log $RUN/agent.log)..."
"$BIN/gridnoded" --config "$RUN/agent.toml" 2>"$RUN/agent.log" &
AGENT=$!
for _ in $(seq 100); do
  "$BIN/gridnodectl" --socket "$SOCK" status >/dev/null 2>&1 && break
  sleep 0.05
done
sleep 3  # a few one-second sweeps

say gridnodectl status
"$BIN/gridnodectl" --socket "$SOCK" status

say gridnodectl sensors
"$BIN/gridnodectl" --socket "$SOCK" sensors

echo
echo "Sources that found nothing on this host:"
"$BIN/gridnodectl" --socket "$SOCK" status --json |
  jq -r '.drivers[] | select(.state != "up") | "  \(.name): \(.state) (\(.error // "no reason"))"' |
  grep . || echo "  none: every source reported"

say "gridnodectl metrics | head -n 25"
"$BIN/gridnodectl" --socket "$SOCK" metrics | head -n 25 || true
echo "... ($("$BIN/gridnodectl" --socket "$SOCK" metrics | grep -vc '^#') samples in all)"

say "gridnodectl metrics | grep -E '^node_(load1|memory_MemAvailable_bytes) '"
"$BIN/gridnodectl" --socket "$SOCK" metrics | grep -E '^node_(load1|memory_MemAvailable_bytes) ' || true

echo
echo "The agent's log:"
sed 's/^/  /' "$RUN/agent.log"
