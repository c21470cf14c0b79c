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

finish
