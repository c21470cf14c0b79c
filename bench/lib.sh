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
