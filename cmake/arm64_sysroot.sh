#!/usr/bin/env bash
# Builds (once) and prints the path of the arm64 sysroot the arm64 preset cross-compiles against:
# Debian 12's arm64 development packages, downloaded from the host's Debian mirror by a private
# apt instance (its own lists, cache and an empty dpkg status, APT::Architecture=arm64) and
# unpacked with `dpkg -x`. Nothing is installed: this machine's dpkg database, its architectures
# and its amd64 packages are left as they are (no `dpkg --add-architecture`), so the sysroot can
# be built on a machine other builds share.
#
#   cmake/arm64_sysroot.sh PACKAGE...   the packages the sysroot must hold (with what they need)
#
# The root is cached under ${XDG_CACHE_HOME:-~/.cache}/gridnode/arm64-sysroot (or
# $GRIDNODE_ARM64_SYSROOT) and rebuilt only when the package list changes. The cross compiler
# (crossbuild-essential-arm64) and qemu-user-static are ordinary amd64 packages gridnode.sh
# installs; this script only needs apt-get and dpkg.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gridnode
ROOT=${GRIDNODE_ARM64_SYSROOT:-$CACHE/arm64-sysroot}
# The cache key: the package list, and this script's layout of the root (bump it on a change).
WANT="layout 2: $*"
if [ -f "$ROOT/.gridnode-packages" ] && [ "$(cat "$ROOT/.gridnode-packages")" = "$WANT" ]; then
  echo "$ROOT"
  exit 0
fi

APT=$ROOT.apt
mkdir -p "$APT"/state/lists/partial "$APT"/cache/archives/partial "$APT"/sources.list.d "$APT"/none
: > "$APT"/status
# The host's Debian sources (deb822 on a Debian 12 image, one-line sources.list elsewhere); the
# other sources a host may list (third parties, often amd64 only) are not the Debian mirror.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$APT"/sources.list.d/debian.sources
elif [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
  grep '^deb ' /etc/apt/sources.list > "$APT"/sources.list.d/debian.list
else
  cat > "$APT"/sources.list.d/debian.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
opts=(-o Dir::State="$APT"/state -o Dir::State::status="$APT"/status
      -o Dir::Cache="$APT"/cache -o Dir::Etc::SourceList=/dev/null
      -o Dir::Etc::SourceParts="$APT"/sources.list.d -o Dir::Etc::Preferences=/dev/null
      -o Dir::Etc::PreferencesParts="$APT"/none -o APT::Architecture=arm64
      -o APT::Architectures::=arm64 -o APT::Install-Recommends=false
      -o Acquire::Languages=none -o Debug::NoLocking=true -o APT::Sandbox::User="$(id -un)")
echo "arm64 sysroot: downloading $* (and what they depend on)" >&2
apt-get "${opts[@]}" -qq update >&2
apt-get "${opts[@]}" -qq -y --download-only install "$@" >&2

rm -rf "$ROOT.new"
mkdir -p "$ROOT.new/DEBIAN"
for deb in "$APT"/cache/archives/*.deb; do
  dpkg -x "$deb" "$ROOT.new"
  # Each library package's symbols and shlibs files, one after the other: dpkg-shlibdeps reads
  # a sysroot with DEBIAN/symbols as a package tree (-S), so the arm64 package's Depends are
  # computed from Debian's own symbols files as on a native build. DEBIAN/packages: what is
  # inside, with versions (the package's lintian overrides name the mbedTLS it embeds).
  dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >> "$ROOT.new/DEBIAN/packages"
  for control in symbols shlibs; do
    dpkg-deb --info "$deb" "$control" >> "$ROOT.new/DEBIAN/$control" 2>/dev/null || true
  done
done
# Absolute symbolic links (a library's .so -> /lib/...) would point out of the root: made
# relative, they point into it wherever it lies.
find "$ROOT.new" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
  target="$ROOT.new$(readlink "$link")"
  ln -sfn "$(realpath -ms --relative-to="$(dirname "$link")" "$target")" "$link"
done
echo "$WANT" > "$ROOT.new/.gridnode-packages"
rm -rf "$ROOT" "$APT"/cache/archives/*.deb
mv "$ROOT.new" "$ROOT"
echo "$ROOT"
