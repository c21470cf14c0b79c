#!/usr/bin/env bash
# Parity with the real thing: Debian's prometheus-node-exporter 1.5 and `gridnoded --once` read
# the same fixture tree; their samples of the families we implement must be the same sets
# (name, labels, value). Every case under tests/fixtures/<driver>/ is checked unless a PARITY
# file there says `skip` (node_exporter drops the whole collector on that malformed tree; we
# skip one reading, which the driver's unit test checks) or lists `only-node_exporter` series.
source "$(dirname "$0")/lib.sh"

command -v prometheus-node-exporter >/dev/null || { echo "prometheus-node-exporter missing (./gridnode.sh deps)"; exit 1; }

# driver -> node_exporter collectors, and the family names to compare.
declare -A COLLECTORS=(
  [hwmon]="hwmon"
  [thermal]="thermal_zone"
  [powercap]="rapl"
  [procfs]="cpu meminfo loadavg netdev diskstats stat"
  [edac]="edac"
  [nvme]="nvme"
  [mdadm]="mdadm"
  [infiniband]="infiniband"
)
declare -A FAMILIES=(
  [hwmon]='^node_hwmon_'
  [thermal]='^node_(thermal_zone_temp|cooling_device_)'
  [powercap]='^node_rapl_'
  [procfs]='^node_(cpu_seconds_total|cpu_guest_seconds_total|memory_|load(1|5|15)$|network_(receive|transmit)_|disk_(reads|writes|read_|written_|io_|discard|flush)|boot_time_seconds|context_switches_total|forks_total|intr_total|procs_(running|blocked))'
  [edac]='^node_edac_'
  [nvme]='^node_nvme_'
  [mdadm]='^node_md_'
  [infiniband]='^node_infiniband_'
)

root_of() {  # case_dir sys|proc: the tree, or an empty one where the case has none
  if [ -d "$1/$2" ]; then echo "$1/$2"; else mkdir -p "$WORK/empty/$2"; echo "$WORK/empty/$2"; fi
}

scrape_node_exporter() {  # case_dir out collectors...
  local dir=$1 out=$2
  shift 2
  local args=(--collector.disable-defaults --path.sysfs="$(root_of "$dir" sys)"
    --path.procfs="$(root_of "$dir" proc)" --path.rootfs="$dir" --no-collector.textfile
    # 1.5's netdev reads this host's interfaces over netlink unless told otherwise, and
    # diskstats adds labels from this host's udev database.
    --no-collector.netdev.netlink --path.udev.data="$WORK/no-udev")
  for c in "$@"; do args+=(--collector."$c"); done
  local port pid
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    prometheus-node-exporter "${args[@]}" --web.listen-address="127.0.0.1:$port" \
      >"$WORK/ne.log" 2>&1 &
    pid=$!
    if wait_for "node_exporter on $port" 10 curl -sf "http://127.0.0.1:$port/metrics"; then
      curl -sf "http://127.0.0.1:$port/metrics" >"$out"
      kill "$pid"
      wait "$pid" 2>/dev/null || true
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  cat "$WORK/ne.log"
  return 1
}

cases=0
for driver in hwmon thermal powercap procfs edac nvme mdadm infiniband; do
  for dir in "$FIXTURES/$driver"/*/; do
    dir=${dir%/}
    [ -d "$dir" ] || continue
    name="$driver/$(basename "$dir")"
    if [ -f "$dir/PARITY" ] && grep -q '^skip' "$dir/PARITY"; then
      echo "skip - $name: $(head -1 "$dir/PARITY")"
      continue
    fi
    cases=$((cases + 1))
    # shellcheck disable=SC2086
    scrape_node_exporter "$dir" "$WORK/ne.prom" ${COLLECTORS[$driver]}
    printf '[agent]\ndrivers = ["%s"]\n' "$driver" >"$WORK/only.toml"
    "$BIN/gridnoded" --once --config "$WORK/only.toml" --sysfs-root "$(root_of "$dir" sys)" \
      --procfs-root "$(root_of "$dir" proc)" >"$WORK/gn.prom" 2>"$WORK/gn.err"
    normalise "$WORK/ne.prom" "${FAMILIES[$driver]}" >"$WORK/ne.txt"
    # A PARITY file may list series only node_exporter has, each with its reason there (a
    # value we refuse to round, say): they are removed from its side, and must be absent
    # from ours.
    if [ -f "$dir/PARITY" ]; then
      sed -n 's/^only-node_exporter //p' "$dir/PARITY" >"$WORK/only.txt"
      awk 'NR == FNR { only[$0] = 1; next }
           { series = $0; sub(/ [^ ]*$/, "", series); if (!(series in only)) print }' \
        "$WORK/only.txt" "$WORK/ne.txt" >"$WORK/ne.kept"
      mv "$WORK/ne.kept" "$WORK/ne.txt"
    fi
    normalise "$WORK/gn.prom" "${FAMILIES[$driver]}" >"$WORK/gn.txt"
    if [ ! -s "$WORK/ne.txt" ]; then
      fail "$name: node_exporter produced no samples of these families (bad fixture?)"
      continue
    fi
    if diff -u "$WORK/ne.txt" "$WORK/gn.txt" >"$WORK/diff.txt"; then
      pass "$name: $(wc -l <"$WORK/gn.txt") samples identical to node_exporter 1.5"
    else
      fail "$name: differs from node_exporter (- node_exporter, + gridnoded)"
      head -60 "$WORK/diff.txt"
    fi
    # The families' HELP texts and types too, for the families both sides have.
    help_lines() {  # prom_file regexp
      awk -v keep="$2" '$1 == "#" && ($2 == "HELP" || $2 == "TYPE") && $3 ~ keep' "$1" | LC_ALL=C sort
    }
    help_lines "$WORK/ne.prom" "${FAMILIES[$driver]}" >"$WORK/ne.help"
    help_lines "$WORK/gn.prom" "${FAMILIES[$driver]}" >"$WORK/gn.help"
    if diff -u "$WORK/ne.help" "$WORK/gn.help" >"$WORK/help.diff"; then
      pass "$name: $(wc -l <"$WORK/gn.help") HELP/TYPE lines identical"
    else
      fail "$name: HELP/TYPE differ from node_exporter (- node_exporter, + gridnoded)"
      head -20 "$WORK/help.diff"
    fi
  done
done
check "at least one fixture case compared" [ "$cases" -gt 0 ]
finish
