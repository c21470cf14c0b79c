#!/usr/bin/env bash
# The arm64 build's agent under qemu-user: what `gridnoded --once` prints and what memory it
# takes there, on bench/lib.sh's generated sysfs tree (3 Super-I/O-like chips) and this host's
# /proc.
#   bench/qemu_footprint.sh [SECONDS]   (default 20; needs build-arm64/ (./gridnode.sh build arm64),
#       qemu-user-static, crossbuild-essential-arm64, python3)
#
# Under qemu-user the guest runs inside the emulator's process: /proc/PID/status of that process
# (VmHWM, VmRSS) counts qemu's own code and heap and its translation cache as well as the
# agent's pages, so it is not the agent's resident memory on a Kunpeng host. This script prints
# three figures that bound it:
#   floor      qemu's peak resident set running an empty arm64 program (the emulator alone);
#   once       qemu's peak resident set (getrusage ru_maxrss) for `gridnoded --once`;
#   daemon     after SECONDS of one-second sweeps: the qemu process's VmRSS and VmHWM, and, from
#              its smaps, what is resident of the agent's own mappings (gridnoded's file and the
#              arm64 shared libraries it maps), the one part that is the guest's alone.
source "$(dirname "$0")/lib.sh"
need qemu-aarch64-static aarch64-linux-gnu-gcc python3
BIN=${GRIDNODE_BIN_DIR:-build-arm64/bin}
need_built gridnoded
SECS=${1:-20}
SYSROOT=$(sed -n 's/^GRIDNODE_ARM64_SYSROOT:PATH=//p' "$BIN/../CMakeCache.txt")
[ -d "$SYSROOT" ] || { echo "no arm64 sysroot named in $BIN/../CMakeCache.txt" >&2; exit 2; }
QEMU=(qemu-aarch64-static -L "$SYSROOT")
file -L "$BIN/gridnoded" | grep -q 'ARM aarch64' || { echo "$BIN/gridnoded is not an arm64 build" >&2; exit 2; }
gen_sysfs "$W/sys"

# maxrss_kib COMMAND...: the peak resident set of the command's process, in KiB.
maxrss_kib() {
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}

printf 'int main(void) { return 0; }\n' >"$W/empty.c"
aarch64-linux-gnu-gcc -O2 -o "$W/empty" "$W/empty.c"
floor=$(maxrss_kib "${QEMU[@]}" "$W/empty")

# As footprint.sh: a socket group /etc/group holds (no NSS module mapped in for it).
printf '[control]\ngroup = "root"\n' >"$W/agent.toml"
ARGS=(--config "$W/agent.toml" --sysfs-root "$W/sys" --state-dir "$W/state" --socket "$W/c.sock")
"${QEMU[@]}" "$BIN/gridnoded" "${ARGS[@]}" --once >"$W/once.prom"
once=$(maxrss_kib "${QEMU[@]}" "$BIN/gridnoded" "${ARGS[@]}" --once)
echo "--- gridnoded --once (arm64, under qemu-aarch64-static): $(wc -l <"$W/once.prom") lines, e.g."
grep -E '^(gridnode_driver_up|node_hwmon_temp_celsius\{chip="platform_nct6775_656",sensor="temp1"\}|node_load1|node_memory_MemAvailable_bytes|gridnode_sweep_duration_seconds)' \
  "$W/once.prom" | head -12

"${QEMU[@]}" "$BIN/gridnoded" "${ARGS[@]}" --interval 1 --log-level warning 2>"$W/agent.log" &
GN=$!
PIDS+=("$GN")
sleep "$SECS"
kill -0 "$GN" || { cat "$W/agent.log"; echo "the agent died" >&2; exit 1; }
status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$GN/status"; }
rss=$(status_kib VmRSS)
hwm=$(status_kib VmHWM)
# Resident KiB of the mappings of files the guest mapped: gridnoded and the sysroot's libraries.
guest_files=$(awk -v bin="$(readlink -f "$BIN/gridnoded")" -v root="$SYSROOT" '
  /^[0-9a-f]+-[0-9a-f]+ / { f = $6; mine = (f == bin || index(f, root) == 1) }
  /^Rss:/ && mine { s += $2 }
  END { print s + 0 }' "/proc/$GN/smaps")
kill "$GN"
wait "$GN" 2>/dev/null || true

echo "--- memory under qemu-aarch64-static (KiB; the emulator's process, see the header)"
echo "floor (empty arm64 program):          maxrss $floor"
echo "gridnoded --once:                     maxrss $once"
echo "gridnoded, after ${SECS} s of sweeps:  VmRSS $rss, VmHWM $hwm; of it the guest's file mappings: $guest_files"
