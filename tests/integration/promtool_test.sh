#!/usr/bin/env bash
# Our exposition passes Prometheus's own linter, on this host and on every fixture tree.
source "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || { echo "promtool missing (./gridnode.sh deps)"; exit 1; }

lint() {  # name file
  if promtool check metrics <"$2" >"$WORK/lint.txt" 2>&1; then
    pass "$1: promtool check metrics is clean"
  else
    fail "$1: promtool check metrics"
    cat "$WORK/lint.txt"
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
check "--json parses and has samples" jq -e '.samples | length > 0' "$WORK/host.json"
finish
