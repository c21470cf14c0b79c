#!/usr/bin/env bash
# The installed package under a real systemd: a Debian 12 root made with debootstrap (minbase:
# no procps, as on minimal images and containers), booted with systemd-nspawn, the .deb
# installed into it with dpkg -i, and then what an operator does: start the agent and a
# collector it streams to, reload (a good file, and a bad one that must make `systemctl reload`
# fail), let the watchdog be fed, query it with gridnodectl, read the journal, stop. Checks that
# systemd sees READY=1, the watchdog pings and a clean stop, and that the units' hardening
# (system-call filter, ProtectSystem, devices) lets the drivers and the uplink work: no SIGSYS,
# no EPERM in the journal.
#
# The root is cached (${XDG_CACHE_HOME:-~/.cache}/gridnode/bookworm-root, or
# $GRIDNODE_ROOT_CACHE) and never written: the container runs on a tmpfs overlay of it
# (--volatile=overlay), so the next run starts from the same clean root. A fresh machine makes
# it once (debootstrap from the mirror apt uses, about a minute; GRIDNODE_DEBIAN_MIRROR
# overrides). The container has its own network namespace with loopback only.
#
# Skips (77) without root, without debootstrap or systemd-nspawn, when the mirror cannot be
# reached, when this machine refuses to boot a container, or in a sanitizer build.
source "$(dirname "$0")/lib.sh"

skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "booting a container (systemd-nspawn) and debootstrap need root"
# The package ships the release build. A sanitizer build's agent under the unit's MemoryMax= and
# MemoryDenyWriteExecute= is not what runs on a host; the default preset runs this test.
if ldd "$BIN/gridnoded" 2>/dev/null | grep -q 'libasan\|libubsan'; then
  skip "a sanitizer build: the package test boots the release build (the default preset)"
fi
for tool in debootstrap:debootstrap systemd-nspawn:systemd-container nsenter:util-linux \
  flock:util-linux dpkg-deb:dpkg jq:jq; do
  command -v "${tool%%:*}" >/dev/null || skip "${tool%%:*} is not installed (Debian package ${tool#*:})"
done
T0=$SECONDS
BUILD=$(dirname "$BIN")

# --- the package: build/package/*.deb (./gridnode.sh package) when it is newer than what it
# packs, else made here by CPack from this build
VERSION=$(sed -n 's/^project(gridnode VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
DEB_NAME=gridnode_${VERSION}_$(dpkg --print-architecture).deb
DEB=$BUILD/package/$DEB_NAME
fresh=1
for f in "$BIN/gridnoded" "$BIN/gridnodectl" "$BIN/gridnode-collector" \
  "$SRC"/packaging/systemd/*.service "$SRC"/packaging/debian/*; do
  [ -f "$DEB" ] && [ "$DEB" -nt "$f" ] || fresh=0
done
if [ "$fresh" -eq 0 ]; then
  cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1 ||
    { cat "$WORK/cpack.log"; fail "cpack"; finish; exit 1; }
  DEB=$WORK/pkg/$DEB_NAME
fi
check "the package to install: $DEB" test -f "$DEB"
mkdir -p "$WORK/share"
cp "$DEB" "$WORK/share/gridnode.deb"

# --- the root: minbase, systemd, and what the package depends on (so that dpkg -i needs no
# network inside)
mirror() {
  if [ -n "${GRIDNODE_DEBIAN_MIRROR:-}" ]; then
    echo "$GRIDNODE_DEBIAN_MIRROR"
    return
  fi
  local m
  m=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u { print u; exit }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && / bookworm / {
      for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; exit } }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=$(mirror)
DEPENDS=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/:any//; s/[[:space:]]//g' |
  grep . | sort -u | tr '\n' ',')
INCLUDE="systemd,systemd-sysv,dbus,${DEPENDS%,}"
CACHE=${GRIDNODE_ROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gridnode}
ROOT=$CACHE/bookworm-root
mkdir -p "$CACHE"
exec 8>"$CACHE/bookworm-root.lock"
flock -w 600 8 || skip "another run holds $CACHE/bookworm-root.lock"
if [ -d "$ROOT" ] && [ "$(cat "$ROOT.packages" 2>/dev/null)" = "$INCLUDE" ]; then
  echo "root: cached $ROOT ($INCLUDE)"
else
  echo "root: debootstrap bookworm from $MIRROR into $ROOT ($INCLUDE)"
  rm -rf "$ROOT" "$ROOT.new" "$ROOT.packages"
  t=$SECONDS
  if ! timeout 420 debootstrap --variant=minbase --include="$INCLUDE" bookworm "$ROOT.new" \
    "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 15 "$WORK/debootstrap.log"
    rm -rf "$ROOT.new"
    skip "debootstrap could not make a bookworm root from $MIRROR (no network to the mirror?)"
  fi
  # apt's package cache and lists are not needed to boot: a smaller cache.
  rm -rf "$ROOT.new"/var/cache/apt/archives/*.deb "$ROOT.new"/var/lib/apt/lists/*_Packages
  mv "$ROOT.new" "$ROOT"
  echo "$INCLUDE" >"$ROOT.packages"
  echo "root: made in $((SECONDS - t)) s, $(du -sh "$ROOT" | cut -f1)"
fi

# --- boot
systemd-nspawn -D "$ROOT" --register=no --keep-unit --boot --volatile=overlay \
  --private-network --console=read-only --machine="gridnode-boot-$$" \
  --bind-ro="$WORK/share:/mnt/gridnode" >"$WORK/nspawn.log" 2>&1 &
NSPAWN=$!
CPID=
for _ in $(seq 100); do
  CPID=$(pgrep -P "$NSPAWN" | head -n 1 || true)
  [ -n "$CPID" ] && [ "$(cat "/proc/$CPID/comm" 2>/dev/null)" = systemd ] && break
  kill -0 "$NSPAWN" 2>/dev/null || break
  CPID=
  sleep 0.1
done
if [ -z "$CPID" ]; then
  tail -n 15 "$WORK/nspawn.log"
  wait "$NSPAWN" 2>/dev/null || true
  skip "systemd-nspawn could not boot the root on this machine (log above)"
fi
# A command inside the container, with a clean environment of its own: "${CT[@]}" cmd (also
# under timeout and bash -c), or in_ct cmd.
CT=(nsenter -t "$CPID" -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
in_ct() { "${CT[@]}" "$@"; }
shutdown_container() {
  if kill -0 "$NSPAWN" 2>/dev/null; then
    in_ct systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 200); do
      kill -0 "$NSPAWN" 2>/dev/null || break
      sleep 0.1
    done
    kill "$NSPAWN" 2>/dev/null || true  # nspawn halts the container on SIGTERM
    wait "$NSPAWN" 2>/dev/null || true
  fi
}
trap 'shutdown_container; cleanup' EXIT
# Until PID 1 answers on its private socket, systemctl fails at once (--wait waits only once
# connected): ask again until the boot is over.
state=
for _ in $(seq 180); do
  state=$(timeout 10 "${CT[@]}" systemctl is-system-running --wait 2>/dev/null || true)
  case $state in running | degraded | maintenance | stopping | offline) break ;; esac
  kill -0 "$NSPAWN" 2>/dev/null || break
  sleep 0.5
done
echo "container: systemd $(in_ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') is $state, booted $((SECONDS - T0)) s into the test"
if [ "$state" != running ] && [ "$state" != degraded ]; then
  tail -n 15 "$WORK/nspawn.log"
  skip "the container's systemd did not come up (state: ${state:-none})"
fi
[ "$state" = running ] || in_ct systemctl --failed --no-pager
check "the root lacks /bin/kill (procps), as minimal images do" bash -c '! "$@" test -e /bin/kill' _ "${CT[@]}"

# --- install, as an operator would, into the running system
in_ct dpkg -i /mnt/gridnode/gridnode.deb >"$WORK/dpkg.log" 2>&1 && rc=0 || rc=$?
cat "$WORK/dpkg.log"
check "dpkg -i in the booted root: exit 0" [ "$rc" -eq 0 ]
check "gridnoded.service is enabled" in_ct systemctl --quiet is-enabled gridnoded.service
check "not started while no upstream is configured" bash -c '! "$@" systemctl --quiet is-active gridnoded' _ "${CT[@]}"
exposure=$(in_ct systemd-analyze security --no-pager gridnoded.service 2>&1 |
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
check "systemd-analyze security (online): exposure ${exposure:-?} <= 2.0" \
  awk -v s="${exposure:-99}" 'BEGIN { exit !(s <= 2.0) }'

# --- a collector on the container's loopback, and the agent enrolled with it
in_ct gridnode-collector pki init --dir /etc/gridnode/collector >/dev/null
in_ct cp /etc/gridnode/collector/ca.crt /etc/gridnode/ca.crt
in_ct sh -c 'echo LISTEN=127.0.0.1:4443 >/etc/default/gridnode-collector'
in_ct runuser -u gridnode -- gridnoded enroll --node-id boot-test >/dev/null
in_ct gridnode-collector pki sign --dir /etc/gridnode/collector --csr /var/lib/gridnode/node.csr \
  --out /var/lib/gridnode/node.crt >/dev/null
in_ct chown gridnode:gridnode /var/lib/gridnode/node.crt
in_ct sed -i 's/^endpoints = \[\]/endpoints = ["127.0.0.1:4443"]/' /etc/gridnode/agent.toml
check "agent.toml names the collector" in_ct grep -q '^endpoints = \["127.0.0.1:4443"\]' /etc/gridnode/agent.toml
in_ct cp /etc/gridnode/agent.toml /etc/gridnode/agent.toml.good
check "systemctl start gridnode-collector" timeout 60 "${CT[@]}" systemctl start gridnode-collector

# --- start: the start job ends only with READY=1 (Type=notify)
t=$(date +%s%N)
timeout 90 "${CT[@]}" systemctl start gridnoded && rc=0 || rc=$?
echo "systemctl start gridnoded: $((($(date +%s%N) - t) / 1000000)) ms"
check "systemctl start gridnoded: exit 0" [ "$rc" -eq 0 ]
show() { in_ct systemctl show -P "$1" "$2"; }
check "active (running)" [ "$(show ActiveState gridnoded)/$(show SubState gridnoded)" = active/running ]
check "the agent's STATUS= line reached systemd" [ -n "$(show StatusText gridnoded)" ]
echo "status line: $(show StatusText gridnoded)"
check "the watchdog is armed: 30 s" [ "$(show WatchdogUSec gridnoded)" = 30s ]
MAIN=$(show MainPID gridnoded)
WD1=$(show WatchdogTimestampMonotonic gridnoded)
check "the watchdog runs" [ "${WD1:-0}" -gt 0 ]
in_ct systemctl status --no-pager gridnoded >"$WORK/unit-status.txt" || true
head -n 12 "$WORK/unit-status.txt"

# --- the agent at work under its hardening
check "gridnodectl status (as root, inside)" in_ct gridnodectl status
wait_for "reports acknowledged by the collector" 30 bash -c \
  '[ "$("$@" gridnodectl status --json | jq -r ".uplink.state == \"streaming\" and .uplink.acked_seq > 0")" = true ]' \
  _ "${CT[@]}"
in_ct gridnodectl status --json >"$WORK/status.json"
in_ct gridnodectl status
check "uplink: streaming to the collector, reports acknowledged" \
  jq_is '.uplink.state == "streaming" and .uplink.acked_seq > 0' "$WORK/status.json"
check "the collector stored them" in_ct test -s /var/lib/gridnode-collector/reports.jsonl
check "every driver swept: none down or stalled" \
  jq_is '[.drivers[] | select(.state == "down" or .state == "stalled")] | length == 0' "$WORK/status.json"
check "procfs is up with no reading skipped" \
  jq_is '.drivers[] | select(.name == "procfs") | .state == "up" and .errors_total == 0' "$WORK/status.json"
check "no driver skipped a reading" jq_is '[.drivers[].errors_total] | add == 0' "$WORK/status.json"
check "gridnodectl as a member of group gridnode" \
  in_ct setpriv --reuid=nobody --regid=nogroup --groups=gridnode gridnodectl status

# --- reload: a good file is taken; a bad one fails `systemctl reload` and changes nothing
in_ct sed -i 's/^interval = 1.0/interval = 0.5/' /etc/gridnode/agent.toml
timeout 60 "${CT[@]}" systemctl reload gridnoded >"$WORK/reload.log" 2>&1 && rc=0 || rc=$?
cat "$WORK/reload.log"
check "systemctl reload gridnoded: exit 0" [ "$rc" -eq 0 ]
check "the new interval is in force" bash -c \
  '[ "$("$@" gridnodectl status --json | jq -r ".interval_seconds == 0.5")" = true ]' _ "${CT[@]}"
in_ct sed -i 's/^\[agent\]$/[agent]\nbogus = 1/' /etc/gridnode/agent.toml
timeout 60 "${CT[@]}" systemctl reload gridnoded >"$WORK/reload.log" 2>&1 && rc=0 || rc=$?
cat "$WORK/reload.log"
check "systemctl reload with a bad agent.toml: fails" [ "$rc" -ne 0 ]
in_ct journalctl -u gridnoded --no-pager -n 30 >"$WORK/journal.txt"
check "the journal says why: file, line and key" \
  grep -q 'reload refused: /etc/gridnode/agent.toml:[0-9]*: unknown key agent.bogus' "$WORK/journal.txt"
check "still active (running) after the refused reload" \
  [ "$(show ActiveState gridnoded)/$(show SubState gridnoded)" = active/running ]
check "the same process, not restarted" [ "$(show MainPID gridnoded)" = "$MAIN" ]
check "on the old config" bash -c \
  '[ "$("$@" gridnodectl status --json | jq -r ".interval_seconds == 0.5")" = true ]' _ "${CT[@]}"
in_ct cp /etc/gridnode/agent.toml.good /etc/gridnode/agent.toml
check "systemctl reload after the fix: exit 0" timeout 60 "${CT[@]}" systemctl reload gridnoded
check "systemctl reload gridnode-collector: exit 0" timeout 60 "${CT[@]}" systemctl reload gridnode-collector
check "the collector got its SIGHUP" bash -c \
  '"$@" journalctl -u gridnode-collector --no-pager | grep -q "reload: no --policy-bundle"' _ "${CT[@]}"

# --- the watchdog: fed again (every 15 s, half of WatchdogSec=) and never fired
wait_for "the next watchdog ping" 25 bash -c \
  '[ "$("${@:2}" systemctl show -P WatchdogTimestampMonotonic gridnoded)" != "$1" ]' _ "$WD1" "${CT[@]}" || true
check "the watchdog was fed again ($(((SECONDS - T0))) s into the test)" \
  [ "$(show WatchdogTimestampMonotonic gridnoded)" != "$WD1" ]
check "no restart: NRestarts=0" [ "$(show NRestarts gridnoded)" = 0 ]

# --- stop: clean, within TimeoutStopSec=
t=$(date +%s%N)
timeout 60 "${CT[@]}" systemctl stop gridnoded && rc=0 || rc=$?
ms=$((($(date +%s%N) - t) / 1000000))
check "systemctl stop gridnoded: exit 0 in $ms ms" [ "$rc" -eq 0 ]
check "stopped cleanly: Result=success, exit status 0" \
  [ "$(show Result gridnoded)/$(show ExecMainStatus gridnoded)" = success/0 ]
check "inactive (dead)" [ "$(show ActiveState gridnoded)" = inactive ]
check "systemctl stop gridnode-collector" timeout 60 "${CT[@]}" systemctl stop gridnode-collector
check "the collector stopped cleanly" [ "$(show Result gridnode-collector)" = success ]

# --- the journal: the agent's lines with their priorities, and nothing the sandbox refused
in_ct journalctl -u gridnoded -o json --no-pager >"$WORK/journal.json"
in_ct journalctl -u gridnoded -u gridnode-collector --no-pager >"$WORK/journal.txt"
echo "journal (gridnoded, by priority):"
jq -r 'select(.SYSLOG_IDENTIFIER == "gridnoded") | .PRIORITY' "$WORK/journal.json" | sort | uniq -c
msg() {  # the PRIORITY of the agent's first line containing $1
  jq -r --arg m "$1" 'select(.SYSLOG_IDENTIFIER == "gridnoded" and (.MESSAGE | type == "string")
    and (.MESSAGE | contains($m))) | .PRIORITY' "$WORK/journal.json" | head -n 1
}
check "journal: 'ready' at notice (5)" [ "$(msg 'gridnoded: ready')" = 5 ]
check "journal: 'start-up memory released' at info (6)" [ "$(msg 'start-up memory released')" = 6 ]
check "journal: the refused reload at err (3)" [ "$(msg 'reload rejected')" = 3 ]
check "journal: 'stopped' at notice (5)" [ "$(msg 'gridnoded: stopped')" = 5 ]
check "journal: no priority prefix left in a message" bash -c \
  '! jq -r "select(.SYSLOG_IDENTIFIER == \"gridnoded\") | .MESSAGE" "$1" | grep -q "^<[0-7]>"' _ "$WORK/journal.json"
refused=$(grep -iE 'SIGSYS|status=31|Bad system call|Operation not permitted|EPERM|Read-only file system|Failed to locate executable' \
  "$WORK/journal.txt" || true)
check "journal: no SIGSYS, no EPERM, no read-only file system, no missing executable" [ -z "$refused" ]
[ -z "$refused" ] || echo "$refused"
# The one refusal the unit makes on purpose: ProtectClock=yes denies timex's adjtimex(2), and the
# driver says so as absent (agent.toml(5), TIMEX), not down.
check "journal: timex absent under ProtectClock=yes, with the reason" \
  grep -q 'driver=timex state=absent err="adjtimex(2) refused by a system call filter' "$WORK/journal.txt"

echo "systemd boot test: $((SECONDS - T0)) s"
finish
