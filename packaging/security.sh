#!/usr/bin/env bash
# Scores our units and our peers' stock units with systemd's own yardstick,
# `systemd-analyze security --offline=yes` (0 = locked down, 10 = exposed), in one run, for the
# README's "Operations" section. The peers' units come out of Debian's packages
# (prometheus-node-exporter, collectd-core), downloaded and unpacked, never installed or started.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
command -v systemd-analyze >/dev/null || { echo "needs systemd-analyze (apt-get install systemd)" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gn-security-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && apt-get download prometheus-node-exporter collectd-core >/dev/null 2>&1) || {
  apt-get update -qq && (cd "$WORK" && apt-get download prometheus-node-exporter collectd-core >/dev/null)
}
for deb in "$WORK"/*.deb; do
  dpkg-deb -x "$deb" "$WORK/root"
done

score() {  # score UNIT_FILE: the overall exposure
  systemd-analyze security --offline=yes --no-pager "$1" 2>/dev/null |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p'
}
printf '%-48s %s\n' "unit" "exposure"
for unit in packaging/systemd/gridnoded.service packaging/systemd/gridnode-collector.service \
  "$WORK"/root/lib/systemd/system/prometheus-node-exporter.service \
  "$WORK"/root/lib/systemd/system/collectd.service; do
  name=$(basename "$unit")
  version=""
  case $name in
    prometheus-node-exporter.service) version=" ($(dpkg-deb -f "$WORK"/prometheus-node-exporter_*.deb Version))" ;;
    collectd.service) version=" ($(dpkg-deb -f "$WORK"/collectd-core_*.deb Version))" ;;
  esac
  printf '%-48s %s\n' "$name$version" "$(score "$unit")"
done
