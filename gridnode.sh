#!/usr/bin/env bash
# gridnode's one entry point: installs what is missing (Debian 12), builds, tests, demonstrates.
#   ./gridnode.sh build    configure and build (programs land in build/bin/)
#   ./gridnode.sh test     build and run every test, then the ASan+UBSan build's tests, then
#                          each libFuzzer target for a bounded number of inputs
#   ./gridnode.sh demo     run the agent on this host and query it as a technician would, and
#                          with PromQL from a VictoriaMetrics the collector writes to
#   ./gridnode.sh demo --grid   three nats-servers, three collectors, four agents, the capacity
#                          view and an exporter writing to VictoriaMetrics on loopback; one
#                          collector is killed to show failover
#   ./gridnode.sh package  build gridnode_<version>_amd64.deb (build/package/) and, cross-compiled,
#                          gridnode_<version>_arm64.deb (build-arm64/package/); lintian both
#   ./gridnode.sh test-arm64   cross-compile for arm64 (Kunpeng hosts) and run the unit tests,
#                          `gridnoded --once` and the arm64-capable integration tests under
#                          qemu-user, then build and lintian the arm64 package (in CI, not in test)
#   ./gridnode.sh deps     only install the Debian packages the others need
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

# Build and test dependencies, all from Debian's mirror (nothing vendored).
BUILD_PKGS=(g++ cmake ninja-build pkgconf lld
  libasio-dev libexpected-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libmbedtls-dev libssl-dev libcereal-dev zlib1g-dev libnats-dev
  libhttp-parser-dev libyaml-dev libcrypt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libprotobuf-c-dev protobuf-c-compiler libsnappy-dev libcurl4-openssl-dev
  libfreeipmi-dev libipmimonitoring-dev)
# Peers the tests measure us against, and the tools integration tests drive.
TEST_PKGS=(prometheus-node-exporter prometheus curl jq socat bc util-linux procps openssl python3
  nats-server victoria-metrics
  python3-fusepy
  openipmi freeipmi-tools prometheus-ipmi-exporter
  groff-base)
# The Debian package: dpkg-shlibdeps (dpkg-dev) and file for CPack, lintian to check it,
# systemd for systemd-analyze (the units' exposure; no systemd needs to run), strace to check
# that the agent needs no system call its unit filters out; adduser, which the package depends
# on, so that the package test can dpkg -i it; debootstrap and systemd-container (systemd-nspawn)
# for the systemd boot test, which installs the package in a booted Debian 12 root.
PACKAGE_PKGS=(dpkg-dev file lintian systemd strace adduser debootstrap systemd-container)
# The fuzz preset: libFuzzer comes with clang's runtime.
FUZZ_PKGS=(clang-14 libclang-rt-14-dev)
# The arm64 preset: Debian's cross compiler and qemu-user (amd64 packages; qemu-aarch64-static is
# called directly, no binfmt_misc set-up), and the arm64 libraries, which are not installed:
# cmake/arm64_sysroot.sh unpacks them into a cached sysroot (no multiarch on this machine).
CROSS_PKGS=(crossbuild-essential-arm64 qemu-user-static)
ARM64_SYSROOT_PKGS=(libstdc++6
  libasio-dev libexpected-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libmbedtls-dev libssl-dev libcereal-dev zlib1g-dev libnats-dev
  libhttp-parser-dev libyaml-dev libcrypt-dev
  libgtest-dev libgmock-dev
  libprotobuf-c-dev libsnappy-dev libcurl4-openssl-dev
  libfreeipmi-dev libipmimonitoring-dev)

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

njobs() { nproc 2>/dev/null || echo 2; }

build() {
  local preset=${1:-default}
  install_missing "${BUILD_PKGS[@]}"
  if [ "$preset" = arm64 ]; then
    install_missing "${CROSS_PKGS[@]}"
    GRIDNODE_ARM64_SYSROOT=$(cmake/arm64_sysroot.sh "${ARM64_SYSROOT_PKGS[@]}")
    export GRIDNODE_ARM64_SYSROOT
  fi
  log "building ($preset)"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$(njobs)"
}

run_tests() {
  install_missing "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${PACKAGE_PKGS[@]}" "${FUZZ_PKGS[@]}"
  build default
  log "testing (default build)"
  ctest --preset default -j "$(njobs)"
  if [ "${GRIDNODE_SKIP_ASAN:-0}" != 1 ]; then
    build asan
    log "testing (ASan+UBSan build)"
    ctest --preset asan -j "$(njobs)"
  fi
  if [ "${GRIDNODE_SKIP_FUZZ:-0}" != 1 ]; then
    build fuzz
    log "fuzzing each decoder for a bounded number of inputs (libFuzzer)"
    ctest --preset fuzz -j "$(njobs)"
  fi
}

# package_in BUILD_DIR: CPack's .deb from that build, checked by lintian.
package_in() {
  local dir=$1 deb
  log "packaging (CPack, $dir)"
  rm -f "$dir"/package/gridnode_*.deb
  (cd "$dir" && cpack -G DEB >/dev/null)
  deb=$(ls "$dir"/package/gridnode_*.deb)
  log "lintian $deb"
  lintian --fail-on error --info "$deb"
  echo "$deb ($(stat -c %s "$deb") bytes)"
}

package() {
  install_missing "${BUILD_PKGS[@]}" "${PACKAGE_PKGS[@]}"
  build default
  package_in build
  if [ "${GRIDNODE_SKIP_ARM64:-0}" != 1 ]; then
    build arm64
    package_in build-arm64
  fi
}

# The arm64 build's tests under qemu-user (the test preset arm64), then its package.
test_arm64() {
  install_missing "${BUILD_PKGS[@]}" "${CROSS_PKGS[@]}" "${PACKAGE_PKGS[@]}" jq
  local start=$SECONDS
  build arm64
  log "testing (arm64 build, under qemu-aarch64-static)"
  ctest --preset arm64 -j "$(njobs)"
  package_in build-arm64
  log "arm64: built, tested and packaged in $((SECONDS - start)) s"
}

demo() {
  case "${1:-}" in
    "") install_missing jq curl victoria-metrics
      build default
      exec bash packaging/demo.sh ;;
    --grid) install_missing jq curl nats-server victoria-metrics
      build default
      exec bash packaging/demo_grid.sh ;;
    *) echo "demo: unknown option $1 (--grid)" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  build) build "${2:-default}" ;;
  test) run_tests ;;
  demo) demo "${2:-}" ;;
  package) package ;;
  test-arm64) test_arm64 ;;
  deps) install_missing "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${PACKAGE_PKGS[@]}" "${FUZZ_PKGS[@]}" \
          "${CROSS_PKGS[@]}" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
