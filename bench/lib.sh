# Shared by the end-to-end bench scripts: sourced, not run. Sets BIN and W (a temporary
# directory) and ends every process in PIDS and removes W on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${GRIDNODE_BIN_DIR:-build/bin}
W=$(mktemp -d "${TMPDIR:-/tmp}/gn-bench-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# need TOOL...: the programs a script runs, looked up on PATH before it starts, so that a missing
# one is one line naming its Debian package, not an error halfway through a run (footprint.sh
# once ended in "cat: /proc/PID/task/*/schedstat" with no node_exporter to measure). The
# packages are gridnode.sh's TEST_PKGS (./gridnode.sh deps installs them), valgrind and binutils.
need() {
  local t p missing=() pkgs=()
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 && continue
    case $t in
      callgrind_control) p=valgrind ;;
      nm) p=binutils ;;
      *) p=$t ;;  # prometheus-node-exporter, nats-server, python3, jq, curl, bc, valgrind
    esac
    missing+=("$t")
    [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local list
  list=$(printf ', %s' "${missing[@]}")
  echo "$(basename "$0"): ${list:2} not found: apt-get install ${pkgs[*]}" >&2
  exit 2
}
# need_built PROGRAM...: programs of this build, in $BIN.
need_built() {
  local b
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "$(basename "$0"): no $BIN/$b: run ./gridnode.sh build first" >&2; exit 2; }
  done
}

# gen_sysfs ROOT: a sysfs tree of 3 Super-I/O-like chips (nct6775), ~285 hwmon readings, for the
# agent's --sysfs-root.
gen_sysfs() {
  local root=$1 n i
  for n in 0 1 2; do
    local dev="$root/devices/platform/nct6775.$((656 + n))"
    local h="$dev/hwmon/hwmon$n"
    mkdir -p "$h" "$root/class/hwmon" "$root/bus/platform"
    ln -s "../../../bus/platform" "$dev/subsystem"
    ln -s "../.." "$h/device"
    ln -s "../../devices/platform/nct6775.$((656 + n))/hwmon/hwmon$n" "$root/class/hwmon/hwmon$n"
    echo nct6775 >"$h/name"
    for i in $(seq 1 10); do
      echo $((30000 + i * 500)) >"$h/temp${i}_input"; echo 80000 >"$h/temp${i}_max"
      echo 95000 >"$h/temp${i}_crit"; echo "SYSTIN$i" >"$h/temp${i}_label"
    done
    for i in $(seq 1 5); do echo $((900 + i * 10)) >"$h/fan${i}_input"; echo 300 >"$h/fan${i}_min"; done
    for i in $(seq 0 14); do
      echo $((1000 + i * 13)) >"$h/in${i}_input"; echo 800 >"$h/in${i}_min"; echo 1800 >"$h/in${i}_max"
    done
  done
}
