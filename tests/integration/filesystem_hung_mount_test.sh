#!/usr/bin/env bash
# A mount whose statfs(2) hangs, for real: a FUSE file system (hungfs.py) that answers statfs only
# when told to, in a mounts file beside a healthy mount. `gridnoded --once` must come back within
# its [filesystem] mount_timeout (plus start-up), with the hung mount's device_error 1 and the
# healthy one's sizes; after release, the mount is read again. Needs root (mount(2) of a FUSE
# file system), /dev/fuse and Debian's python3-fusepy; skips (77) without them.
# The mount lives in a private mount namespace (unshare -m), so that nothing else on the
# machine (df, another test's agent reading the real /proc/1/mounts) meets the hung statfs.
if [ -z "${GRIDNODE_IN_MOUNT_NS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "skip: needs root to mount a FUSE file system"; exit 77; }
  command -v unshare >/dev/null || { echo "skip: no unshare (util-linux)"; exit 77; }
  GRIDNODE_IN_MOUNT_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"

[ -c /dev/fuse ] || { echo "skip: no /dev/fuse"; exit 77; }
/usr/bin/python3 -c 'import fusepy' 2>/dev/null || { echo "skip: python3-fusepy missing"; exit 77; }

ROOT=$WORK/root
mkdir -p "$ROOT/ok" "$ROOT/mnt/hung" "$WORK/proc/1"
/usr/bin/python3 "$(dirname "$0")/hungfs.py" "$ROOT/mnt/hung" "$WORK/release" 2>"$WORK/hungfs.log" &
FUSE_PID=$!
PIDS+=("$FUSE_PID")
unmount() {
  touch "$WORK/release"
  umount "$ROOT/mnt/hung" 2>/dev/null || umount -l "$ROOT/mnt/hung" 2>/dev/null || true
  cleanup
}
trap unmount EXIT
if ! wait_for "hungfs mounted" 10 grep -q " $ROOT/mnt/hung fuse" /proc/self/mounts; then
  cat "$WORK/hungfs.log"
  echo "skip: could not mount a FUSE file system here"
  exit 77
fi
# The mounts the driver reads (rootfs = $ROOT): a healthy directory and the hung mount.
printf '/dev/ok /ok ext4 rw 0 0\nhungfs /mnt/hung fuse.hungfs rw,nosuid,nodev 0 0\n' \
  >"$WORK/proc/1/mounts"
printf '[agent]\ndrivers = ["filesystem"]\n[filesystem]\nmount_timeout = 0.3\n' >"$WORK/agent.toml"

HUNG='node_filesystem_device_error{device="hungfs",fstype="fuse.hungfs",mountpoint="/mnt/hung"}'
# The agent writes its sweep, then exits: its exit waits for the worker still in the hung
# statfs, since the kernel lets no process leave a FUSE request the server has taken (as with
# a hard NFS mount). So the output is awaited, not the process; the release lets it go.
start=$(date +%s%N)
"$BIN/gridnoded" --once --config "$WORK/agent.toml" --procfs-root "$WORK/proc" \
  --sysfs-root "$WORK/proc" --rootfs-root "$ROOT" --state-dir "$WORK/state" \
  >"$WORK/first.prom" 2>"$WORK/first.err" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "the agent's sweep" 10 grep -q '^gridnode_driver_up' "$WORK/first.prom"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "the sweep did not wait for the hung statfs (${elapsed_ms} ms, mount_timeout 300 ms)" \
  [ "$elapsed_ms" -lt 5000 ]
check "the hung mount is a device error" grep -qxF "$HUNG 1" "$WORK/first.prom"
check "the hung mount has no size" not_ok grep -q 'size_bytes{device="hungfs"' "$WORK/first.prom"
check "the healthy mount has its size" grep -q 'node_filesystem_size_bytes{device="/dev/ok",fstype="ext4",mountpoint="/ok"} [1-9]' "$WORK/first.prom"
check "the stall is logged" grep -q "mount point stalled" "$WORK/first.err"
check "the driver is up" grep -qxF 'gridnode_driver_up{driver="filesystem"} 1' "$WORK/first.prom"

touch "$WORK/release"
wait_for "the agent to exit once the statfs returned" 10 not_ok kill -0 "$AGENT"
timeout 20 "$BIN/gridnoded" --once --config "$WORK/agent.toml" --procfs-root "$WORK/proc" \
  --sysfs-root "$WORK/proc" --rootfs-root "$ROOT" --state-dir "$WORK/state" \
  >"$WORK/second.prom" 2>"$WORK/second.err"
check "released, the mount is read: device_error 0" grep -qxF "$HUNG 0" "$WORK/second.prom"
check "released, its size is hungfs's (1000 blocks of 4096)" \
  grep -qxF 'node_filesystem_size_bytes{device="hungfs",fstype="fuse.hungfs",mountpoint="/mnt/hung"} 4096000' "$WORK/second.prom"
finish
