#!/usr/bin/env bash
# What the kernel refuses that a fixture tree cannot: real files of this host answer an errno
# injected by strace (-P: only the reads of those paths), as the kernel answers them on some
# hosts. pressure with PSI disabled at boot (EOPNOTSUPP), netclass's attributes a link does not
# have now (EINVAL, as speed and duplex of a link that is down). timex's EPERM is in
# unit_security_test (the unit's ProtectClock=yes).
source "$(dirname "$0")/lib.sh"

if ! command -v strace >/dev/null || ! strace -f -qq -o /dev/null true 2>/dev/null; then
  echo "SKIP: strace missing or not allowed to trace here"
  exit 77
fi

once() {  # out err driver strace-args...
  local out=$1 err=$2 driver=$3
  shift 3
  printf '[agent]\ndrivers = ["%s"]\n' "$driver" >"$WORK/$driver.toml"
  strace -f -qq -o /dev/null -e trace=read,pread64 "$@" \
    "$BIN/gridnoded" --once --log-level info --config "$WORK/$driver.toml" >"$out" 2>"$err" || true
}

if [ -r /proc/pressure/cpu ] && [ -r /proc/pressure/io ] && [ -r /proc/pressure/memory ]; then
  once "$WORK/p.prom" "$WORK/p.err" pressure -e inject=read,pread64:error=EOPNOTSUPP \
    -P /proc/pressure/cpu -P /proc/pressure/io -P /proc/pressure/memory
  check "PSI disabled: pressure is absent, not down" \
    grep -qx 'gridnode_driver_up{driver="pressure"} 0' "$WORK/p.prom"
  check "PSI disabled: no error counted" \
    grep -qx 'gridnode_driver_errors_total{driver="pressure"} 0' "$WORK/p.prom"
  check "PSI disabled: no node_pressure_ sample" bash -c '! grep -q "^node_pressure_" "$1"' _ \
    "$WORK/p.prom"
  check "PSI disabled: the log says how to enable it" grep -q 'boot with psi=1' "$WORK/p.err"
  # Only io refused: cpu and memory are still reported.
  once "$WORK/p.prom" "$WORK/p.err" pressure -e inject=read,pread64:error=EOPNOTSUPP \
    -P /proc/pressure/io
  check "io refused: cpu still reported" grep -q '^node_pressure_cpu_waiting_seconds_total ' \
    "$WORK/p.prom"
  check "io refused: memory still reported" \
    grep -q '^node_pressure_memory_stalled_seconds_total ' "$WORK/p.prom"
  check "io refused: io left out" bash -c '! grep -q "^node_pressure_io_" "$1"' _ "$WORK/p.prom"
else
  echo "skip - pressure: this kernel has no readable /proc/pressure"
fi

dev=lo
if [ -r "/sys/class/net/$dev/mtu" ] && [ -r "/sys/class/net/$dev/tx_queue_len" ]; then
  once "$WORK/n.prom" "$WORK/n.err" netclass -e inject=read,pread64:error=EINVAL \
    -P "/sys/class/net/$dev/mtu" -P "/sys/class/net/$dev/operstate"
  check "EINVAL at discovery: $dev's mtu is left out" \
    bash -c '! grep -q "^node_network_mtu_bytes{device=\"$2\"}" "$1"' _ "$WORK/n.prom" "$dev"
  check "EINVAL at discovery: not counted as an error" \
    grep -qx 'gridnode_driver_errors_total{driver="netclass"} 0' "$WORK/n.prom"
  check "EINVAL operstate: $dev is reported not up, its info has operstate \"\"" \
    bash -c 'grep -qx "node_network_up{device=\"$2\"} 0" "$1" &&
      grep -q "^node_network_info{.*device=\"$2\".*operstate=\"\"}" "$1"' _ "$WORK/n.prom" "$dev"
  check "EINVAL at discovery: the other files still read" \
    grep -q "^node_network_transmit_queue_length{device=\"$dev\"} " "$WORK/n.prom"
else
  echo "skip - netclass: this host has no /sys/class/net/$dev"
fi
finish
