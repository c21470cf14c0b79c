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
  [netclass]="netclass"
  [pressure]="pressure"
  [cpufreq]="cpufreq"
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
  [netclass]='^node_network_(up|info|address_assign_type|carrier|carrier_(up_|down_)?changes_total|device_id|dormant|flags|iface_(id|link|link_mode)|mtu_bytes|name_assign_type|net_dev_group|speed_bytes|transmit_queue_length|protocol_type)$'
  [pressure]='^node_pressure_'
  # node_cpu_scaling_governor is node_exporter 1.6's: 1.5 has no governor metric to compare.
  [cpufreq]='^node_cpu_(scaling_)?frequency_'
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

# The HELP and TYPE lines of the families compared (those with samples in $3, a normalised
# file), sorted: names, texts and types must be node_exporter's too.
describe() {  # file regexp samples
  awk -v keep="$2" 'NR == FNR { sub(/[{ ].*/, ""); compared[$0] = 1; next }
    $1 == "#" && ($2 == "HELP" || $2 == "TYPE") && $3 ~ keep && ($3 in compared)' "$3" "$1" |
    LC_ALL=C sort
}

cases=0
for driver in hwmon thermal powercap procfs edac nvme mdadm infiniband netclass pressure cpufreq; do
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
    describe "$WORK/ne.prom" "${FAMILIES[$driver]}" "$WORK/ne.txt" >"$WORK/ne.help"
    describe "$WORK/gn.prom" "${FAMILIES[$driver]}" "$WORK/ne.txt" >"$WORK/gn.help"
    if diff -u "$WORK/ne.help" "$WORK/gn.help" >"$WORK/diff.txt"; then
      pass "$name: $(grep -c ' HELP ' "$WORK/gn.help") families' HELP and TYPE as node_exporter's"
    else
      fail "$name: HELP/TYPE differ from node_exporter (- node_exporter, + gridnoded)"
      head -40 "$WORK/diff.txt"
    fi
  done
done
check "at least one fixture case compared" [ "$cases" -gt 0 ]

# netclass on this host's own /sys/class/net too: real devices, with the files the kernel
# refuses (EINVAL, EOPNOTSUPP) that a fixture tree cannot show. Compared again once when they
# differ (a link may change between the two reads).
if [ -d /sys/class/net ]; then
  printf '[agent]\ndrivers = ["netclass"]\n' >"$WORK/netclass.toml"
  mkdir -p "$WORK/host"
  ln -s /sys "$WORK/host/sys"
  ln -s /proc "$WORK/host/proc"
  for try in 1 2; do
    scrape_node_exporter "$WORK/host" "$WORK/ne.prom" netclass
    "$BIN/gridnoded" --once --config "$WORK/netclass.toml" >"$WORK/gn.prom" 2>"$WORK/gn.err"
    normalise "$WORK/ne.prom" "${FAMILIES[netclass]}" >"$WORK/ne.txt"
    normalise "$WORK/gn.prom" "${FAMILIES[netclass]}" >"$WORK/gn.txt"
    diff -u "$WORK/ne.txt" "$WORK/gn.txt" >"$WORK/diff.txt" && break
  done
  if [ -s "$WORK/ne.txt" ] && [ ! -s "$WORK/diff.txt" ]; then
    pass "netclass on this host: $(wc -l <"$WORK/gn.txt") samples identical to node_exporter 1.5"
  elif [ ! -s "$WORK/ne.txt" ]; then
    echo "skip - netclass on this host: node_exporter reports no netclass sample here"
  else
    fail "netclass on this host: differs from node_exporter (- node_exporter, + gridnoded)"
    head -40 "$WORK/diff.txt"
  fi
fi
# timex has no tree: both read this host's clock through adjtimex(2), a moment apart. Values
# the kernel's clock discipline moves between two reads are compared within a tolerance:
# offset 1 ms, frequency ratio 1 ppm, estimated error 1 ms, maximum error 10 ms (the kernel
# adds 500 us to it every second while no NTP daemon resets it); the others (status, sync
# status, tick, loop constant, TAI offset, the PPS values and counters) must be equal.
TIMEX='^node_timex_'
scrape_node_exporter "$WORK" "$WORK/ne-timex.prom" timex
printf '[agent]\ndrivers = ["timex"]\n' >"$WORK/timex.toml"
"$BIN/gridnoded" --once --config "$WORK/timex.toml" >"$WORK/gn-timex.prom" 2>"$WORK/gn.err"
normalise "$WORK/ne-timex.prom" "$TIMEX" >"$WORK/ne.txt"
normalise "$WORK/gn-timex.prom" "$TIMEX" >"$WORK/gn.txt"
if [ "$(wc -l <"$WORK/ne.txt")" -eq 0 ]; then
  # node_exporter leaves timex out when adjtimex is refused (EPERM); gridnoded says why.
  echo "skip - timex: node_exporter has no timex samples here (adjtimex refused?)"
  cat "$WORK/gn.err"
else
  check "timex: gridnoded reports the 17 families" [ "$(wc -l <"$WORK/gn.txt")" -eq 17 ]
  if LC_ALL=C join <(sed 's/ /\t/' "$WORK/ne.txt") <(sed 's/ /\t/' "$WORK/gn.txt") -t $'\t' -a 1 -a 2 -o auto \
    -e MISSING >"$WORK/timex.joined" && awk -F'\t' '
      BEGIN {
        tol["node_timex_offset_seconds"] = 0.001
        tol["node_timex_frequency_adjustment_ratio"] = 0.000001
        tol["node_timex_estimated_error_seconds"] = 0.001
        tol["node_timex_maxerror_seconds"] = 0.01
      }
      {
        t = ($1 in tol) ? tol[$1] : 0
        d = $2 - $3
        if (d < 0) d = -d
        if ($2 == "MISSING" || $3 == "MISSING" || d > t) {
          printf "  %s: node_exporter %s, gridnoded %s (tolerance %s)\n", $1, $2, $3, t
          bad = 1
        }
      }
      END { exit bad }' "$WORK/timex.joined"; then
    pass "timex: $(wc -l <"$WORK/gn.txt") samples agree with node_exporter 1.5 on this host"
  else
    fail "timex: differs from node_exporter on this host"
  fi
  describe "$WORK/ne-timex.prom" "$TIMEX" "$WORK/ne.txt" >"$WORK/ne.help"
  describe "$WORK/gn-timex.prom" "$TIMEX" "$WORK/ne.txt" >"$WORK/gn.help"
  if diff -u "$WORK/ne.help" "$WORK/gn.help" >"$WORK/diff.txt"; then
    pass "timex: HELP and TYPE as node_exporter's"
  else
    fail "timex: HELP/TYPE differ from node_exporter (- node_exporter, + gridnoded)"
    head -40 "$WORK/diff.txt"
  fi
fi
finish
