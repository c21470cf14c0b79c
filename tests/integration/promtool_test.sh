#!/usr/bin/env bash
# Our exposition passes Prometheus's own linter, on this host and on every fixture tree.
source "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || { echo "promtool missing (./gridnode.sh deps)"; exit 1; }

# Any parse error fails. Lint problems fail too, except one: node_exporter's own meminfo names
# (node_memory_MemTotal_bytes, ...) are camelCase, promtool says so about node_exporter's output
# as well, and dashboards depend on those exact names, so that one is inherited, not ours.
lint() {  # name file
  promtool check metrics <"$2" >"$WORK/lint.txt" 2>&1 || true
  local ours
  ours=$(grep -vE "^node_memory_[A-Za-z0-9_]+ metric names should be written in 'snake_case' not 'camelCase'$" "$WORK/lint.txt" || true)
  if [ -z "$ours" ]; then
    pass "$1: promtool check metrics is clean ($(grep -c . "$WORK/lint.txt") inherited node_memory_ camelCase notes)"
  else
    fail "$1: promtool check metrics"
    echo "$ours"
  fi
}

"$BIN/gridnoded" --once >"$WORK/host.prom"
lint "this host" "$WORK/host.prom"
check "this host: has samples" grep -q '^gridnode_driver_up' "$WORK/host.prom"

for dir in "$FIXTURES"/*/*/; do
  dir=${dir%/}
  [ -d "$dir/sys" ] || [ -d "$dir/proc" ] || continue
  name=${dir#"$FIXTURES"/}
  "$BIN/gridnoded" --once --sysfs-root "$dir/sys" --procfs-root "$dir/proc" >"$WORK/f.prom" 2>/dev/null
  lint "$name" "$WORK/f.prom"
done

# --json is JSON with the same number of samples as the text.
"$BIN/gridnoded" --once --json >"$WORK/host.json"
check "--json parses and has samples" jq_is '.samples | length > 0' "$WORK/host.json"
finish
