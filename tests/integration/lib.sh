# Shared helpers for the integration tests: sourced, not run.
set -euo pipefail

BIN=${GRIDNODE_BIN_DIR:?GRIDNODE_BIN_DIR must point at build/bin}
SRC=${GRIDNODE_SOURCE_DIR:?GRIDNODE_SOURCE_DIR must point at the source tree}
FIXTURES=$SRC/tests/fixtures

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gn-it-XXXXXX")
chmod 755 "$WORK"  # another user (setpriv) must be able to reach the socket
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# not_ok command...: the command fails (its output goes to stderr, for the log).
not_ok() {
  ! "$@" >&2
}
# jq_is FILTER [FILE...]: the filter prints exactly "true". (jq -e exits 0 on empty input, so a
# command that printed nothing would pass a jq -e check.)
jq_is() {
  [ "$(jq -r "$1" "${@:2}")" = true ]
}
finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}

# wait_for "description" seconds command...: polls until the command succeeds.
wait_for() {
  local what=$1 limit=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      echo "timed out waiting for: $what" >&2
      return 1
    fi
    sleep 0.05
  done
}

# check_export_drains URLS: a check that `gridnode-collector export --drain` writes the stream to
# $WORK/archive.jsonl (log: $WORK/export.log, shown when it fails). It is run again while it fails:
# a restarted nats-server may still be rejoining (leader elections), and an export that cannot make
# its consumer yet exits non-zero; it is exactly-once across its own restarts.
check_export_drains() {
  local attempt
  for attempt in $(seq 10); do
    if "$BIN/gridnode-collector" export --from "$1" --sink "$WORK/archive.jsonl" --drain \
      2>>"$WORK/export.log"; then
      pass "export drained the stream (run $attempt)"
      return 0
    fi
    sleep 1
  done
  fail "export drained the stream (10 runs)"
  tail -n 20 "$WORK/export.log" | sed 's/^/  export: /'
}

# A random port below the kernel's ephemeral range, so that no outgoing connection of a test
# running beside this one takes it between our check and our server's bind (a nats-server of the
# cluster test once found its port taken so).
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
port_candidate() {
  if [ "$EPHEMERAL_LOW" -gt 11000 ]; then
    echo $((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
  else
    echo $((20000 + RANDOM % 40000))  # no room below it
  fi
}

# A port nobody listens on now (node_exporter cannot report the port it got from :0).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$(port_candidate)
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Prometheus text -> sorted "name{labels} value" lines, comments dropped, values normalised
# through the same float formatting so that 41.5 and 41.500 or 1.8446744073709552e+19 and
# 18446744073709551615 compare equal. Only names matching the regexp $2 are kept.
normalise() {
  awk -v keep="$2" '
    /^#/ || NF == 0 { next }
    {
      value = $NF
      series = substr($0, 1, length($0) - length(value) - 1)
      name = series
      sub(/\{.*/, "", name)
      if (name !~ keep) next
      printf "%s %.12g\n", series, value + 0
    }' "$1" | LC_ALL=C sort
}
