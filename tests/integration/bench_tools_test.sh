#!/usr/bin/env bash
# Every bench script checks the programs it runs before it starts: with one of them missing it
# stops at once with one line naming the Debian package (footprint.sh once ended in "cat:
# /proc/PID/task/*/schedstat: No such file or directory" on a host without node_exporter). A
# missing program is a PATH that lacks it: nothing is uninstalled.
source "$(dirname "$0")/lib.sh"

# A PATH of links to every program of this one, the first of each name as a lookup finds it.
FARM=$WORK/path
mkdir "$FARM" "$WORK/aside"
IFS=: read -ra path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
  [ -d "$d" ] && ln -s "$d"/* "$FARM"/ 2>/dev/null || true
done
# bench SCRIPT ARGS...: the script with $FARM as PATH; output in $out, exit status in $rc.
bench() {
  out=$(timeout 60 env PATH="$FARM" bash "$SRC/bench/$1" "${@:2}" 2>&1) && rc=0 || rc=$?
}
# without TOOL... -- SCRIPT ARGS...: runs it with those tools out of $FARM.
without() {
  local tools=()
  while [ "$1" != -- ]; do tools+=("$1"); shift; done
  shift
  local t
  for t in "${tools[@]}"; do [ ! -e "$FARM/$t" ] || mv "$FARM/$t" "$WORK/aside/"; done
  bench "$@"
  for t in "${tools[@]}"; do [ ! -e "$WORK/aside/$t" ] || mv "$WORK/aside/$t" "$FARM/"; done
}
# one_line_saying TEXT...: stopped with status 2 and one line holding every TEXT.
one_line_saying() {
  [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] || { echo "  rc=$rc: $out"; return 1; }
  local t
  for t in "$@"; do grep -qF -- "$t" <<<"$out" || { echo "  no \"$t\" in: $out"; return 1; }; done
}

without prometheus-node-exporter -- footprint.sh 1
check "footprint.sh without node_exporter: one line naming the package" \
  one_line_saying "footprint.sh: prometheus-node-exporter not found: apt-get install prometheus-node-exporter"
without bc jq -- footprint.sh 1
check "footprint.sh without bc and jq: both on one line" one_line_saying "jq, bc not found: apt-get install jq bc"
without jq -- latency.sh 1 1
check "latency.sh without jq" one_line_saying "latency.sh: jq not found: apt-get install jq"
without nats-server -- capacity_scale.sh 10 10
check "capacity_scale.sh without nats-server" one_line_saying "apt-get install nats-server"
without python3 -- capacity_freshness.sh 1 1 1
check "capacity_freshness.sh without python3" one_line_saying "python3" "apt-get install"
without curl -- grid_sim.sh
check "grid_sim.sh without curl" one_line_saying "curl" "apt-get install"
without callgrind_control valgrind -- text_order.sh 1
check "text_order.sh without valgrind" one_line_saying "apt-get install valgrind"
without nm -- text_order.sh 1
check "text_order.sh without nm" one_line_saying "nm not found: apt-get install binutils"
# The build's own programs: built first, and the line says so.
mkdir "$WORK/empty-bin"
GRIDNODE_BIN_DIR=$WORK/empty-bin bench footprint.sh 1
check "footprint.sh before a build: says to build" one_line_saying "no $WORK/empty-bin/gridnoded: run ./gridnode.sh build first"
GRIDNODE_BIN_DIR=$WORK/empty-bin bench latency.sh 1 1
check "latency.sh before a build: says to build" one_line_saying "run ./gridnode.sh build first"

finish
