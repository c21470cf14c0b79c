#!/usr/bin/env bash
# The Debian package end to end, on this machine: built with CPack from this build, installed
# with dpkg -i, its files, user and permissions checked, the installed programs run (the daemon
# on the shipped configuration, as its own user), removed (state kept), then purged: nothing
# it made may be left. Needs root (dpkg); ctest runs it alone (RUN_SERIAL), since it installs
# /etc/gridnode/agent.toml, which any gridnoded without --config would read.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the package test installs a .deb with dpkg and needs root"
  exit 77
fi
if dpkg-query -W -f='${Status}' gridnode 2>/dev/null | grep -q "installed"; then
  echo "SKIP: a gridnode package is installed on this machine; the test would purge it"
  exit 77
fi
BUILD=$(dirname "$BIN")
ROOTS=(/etc /usr /lib /var/lib /var/cache /run)
# Whatever carries our name, and whatever an owner who no longer exists owned (the gridnode
# user's files, once purge has deleted the user).
leftovers() {
  find "${ROOTS[@]}" -xdev \( -name '*gridnode*' -o -nouser -o -nogroup \) 2>/dev/null | sort
}
leftovers >"$WORK/before.txt"

purge() { dpkg --purge gridnode >/dev/null 2>&1 || true; }
trap 'purge; cleanup' EXIT

# --- build
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log"; fail "cpack"; finish; }
VERSION=$(sed -n 's/^project(gridnode VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
DEB=$WORK/pkg/gridnode_${VERSION}_$(dpkg --print-architecture).deb
check "cpack made $(basename "$DEB")" test -f "$DEB"
dpkg-deb --info "$DEB"
echo "package size: $(stat -c %s "$DEB") bytes"
dpkg-deb --contents "$DEB" >"$WORK/contents.txt"
for f in ./usr/sbin/gridnoded ./usr/sbin/gridnode-collector ./usr/bin/gridnodectl \
  ./lib/systemd/system/gridnoded.service ./lib/systemd/system/gridnode-collector.service \
  ./usr/lib/sysusers.d/gridnode.conf ./usr/lib/tmpfiles.d/gridnode.conf \
  ./etc/gridnode/agent.toml ./etc/gridnode/policy.toml ./etc/default/gridnode-collector \
  ./usr/share/man/man8/gridnoded.8.gz ./usr/share/man/man1/gridnodectl.1.gz \
  ./usr/share/man/man8/gridnode-collector.8.gz ./usr/share/man/man5/agent.toml.5.gz \
  ./usr/share/doc/gridnode/copyright ./usr/share/doc/gridnode/changelog.gz; do
  check "package holds $f" grep -q " $f\$" "$WORK/contents.txt"
done
check "every file is root's" bash -c '! awk "\$2 != \"root/root\"" "$1" | grep -q .' _ "$WORK/contents.txt"
dpkg-deb -x "$DEB" "$WORK/unpacked"
check "binaries are stripped" bash -c 'file "$1"/usr/sbin/* "$1"/usr/bin/* | grep -c ", stripped" | grep -qx 3' _ "$WORK/unpacked"
check "control: the conffiles" bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles | grep -qx /etc/gridnode/policy.toml' _ "$DEB"
check "control: depends on what dpkg-shlibdeps found" bash -c 'dpkg-deb -f "$1" Depends | grep -q "libc6 (>= "' _ "$DEB"

if command -v lintian >/dev/null; then
  { lintian --info --show-overrides "$DEB" 2>&1 || true; } | grep -v '^N:' | tee "$WORK/lintian.txt"
  check "lintian: no error (the overridden one is justified in the package)" \
    lintian --fail-on error "$DEB"
  check "lintian: no warning" bash -c '! grep -q "^W:" "$1"' _ "$WORK/lintian.txt"
else
  echo "lintian not installed: not checked (./gridnode.sh deps installs it)"
fi

# --- install
dpkg -i "$DEB" >"$WORK/dpkg-i.log" 2>&1 && rc=0 || rc=$?
cat "$WORK/dpkg-i.log"
check "dpkg -i succeeds" [ "$rc" -eq 0 ]
check "user gridnode exists" getent passwd gridnode
uid=$(getent passwd gridnode | cut -d: -f3)
check "gridnode is a system user (uid $uid < 1000)" [ "${uid:-1000}" -lt 1000 ]
check "gridnode cannot log in" bash -c '[ "$(getent passwd gridnode | cut -d: -f7)" = /usr/sbin/nologin ]'
check "group gridnode exists" getent group gridnode
check "/var/lib/gridnode: gridnode:gridnode 0750" [ "$(stat -c '%U:%G %a' /var/lib/gridnode)" = "gridnode:gridnode 750" ]
check "/usr/sbin/gridnoded: root 0755" [ "$(stat -c '%U %a' /usr/sbin/gridnoded)" = "root 755" ]
check "/usr/bin/gridnodectl: root 0755" [ "$(stat -c '%U %a' /usr/bin/gridnodectl)" = "root 755" ]
check "/etc/gridnode/agent.toml: root 0644" [ "$(stat -c '%U %a' /etc/gridnode/agent.toml)" = "root 644" ]
check "dpkg knows the conffiles" bash -c 'dpkg-query -W -f="\${Conffiles}" gridnode | grep -q /etc/gridnode/agent.toml'
check "gridnoded.service is enabled" test -L /etc/systemd/system/multi-user.target.wants/gridnoded.service
check "gridnode-collector.service is not" test ! -e /etc/systemd/system/multi-user.target.wants/gridnode-collector.service
if [ -d /run/systemd/system ]; then
  check "not started: no upstream configured" bash -c '! systemctl --quiet is-active gridnoded'
fi

# --- the installed programs
check "gridnodectl --version" bash -c '/usr/bin/gridnodectl --version | grep -q "^gridnodectl $1"' _ "$VERSION"
check "gridnoded --version" bash -c '/usr/sbin/gridnoded --version | grep -q "^gridnoded $1"' _ "$VERSION"
AS_GRIDNODE=(setpriv --reuid=gridnode --regid=gridnode --init-groups)
"${AS_GRIDNODE[@]}" /usr/sbin/gridnoded --once >"$WORK/once.prom" 2>"$WORK/once.err" && rc=0 || rc=$?
cat "$WORK/once.err"
check "gridnoded --once as gridnode, on the shipped config: exit 0" [ "$rc" -eq 0 ]
check "gridnoded --once: node_exporter's metrics" grep -q '^node_load1 ' "$WORK/once.prom"
out=$("${AS_GRIDNODE[@]}" /usr/sbin/gridnoded enroll --node-id package-test 2>&1) && rc=0 || rc=$?
check "enroll as gridnode writes the key into the state directory" \
  bash -c '[ "$(stat -c "%U %a" /var/lib/gridnode/node.key)" = "gridnode 600" ]'
# The daemon as systemd would run it: its runtime directory, its user, the shipped config.
install -d -o gridnode -g gridnode -m 0750 /run/gridnode
"${AS_GRIDNODE[@]}" /usr/sbin/gridnoded 2>"$WORK/daemon.log" &
DAEMON=$!
PIDS+=("$DAEMON")
wait_for "the packaged daemon's socket" 10 /usr/bin/gridnodectl status
check "the daemon runs on the shipped config" /usr/bin/gridnodectl status
check "its socket is gridnode:gridnode 0660" [ "$(stat -c '%U:%G %a' /run/gridnode/control.sock)" = "gridnode:gridnode 660" ]
kill -TERM "$DAEMON"
wait "$DAEMON" && rc=0 || rc=$?
check "the daemon stops on SIGTERM: exit 0" [ "$rc" -eq 0 ]
cat "$WORK/daemon.log"

# --- remove: programs go, configuration, state and user stay
dpkg --remove gridnode >"$WORK/dpkg-r.log" 2>&1 && rc=0 || rc=$?
check "dpkg --remove succeeds" [ "$rc" -eq 0 ]
check "remove: the programs are gone" test ! -e /usr/sbin/gridnoded
check "remove: the configuration stays" test -f /etc/gridnode/agent.toml
check "remove: the node key stays" test -f /var/lib/gridnode/node.key
check "remove: the user stays" getent passwd gridnode

# --- purge: nothing left
dpkg --purge gridnode >"$WORK/dpkg-p.log" 2>&1 && rc=0 || rc=$?
cat "$WORK/dpkg-p.log"
check "dpkg --purge succeeds" [ "$rc" -eq 0 ]
check "purge: dpkg forgot the package" bash -c '! dpkg-query -W gridnode 2>/dev/null'
check "purge: user gone" bash -c '! getent passwd gridnode'
check "purge: group gone" bash -c '! getent group gridnode'
leftovers >"$WORK/after.txt"
check "purge: nothing left behind under ${ROOTS[*]}" diff "$WORK/before.txt" "$WORK/after.txt"

finish
