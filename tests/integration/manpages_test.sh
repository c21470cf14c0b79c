#!/usr/bin/env bash
# The manual pages keep up with the programs: every flag that gridnoded, gridnodectl and
# gridnode-collector list in --help (each subcommand's too) is in the program's page, every
# section and key of packaging/agent.toml (commented-out keys too) is in agent.toml(5), and
# groff reads the pages without a warning (manpage_check.py says exactly what is checked).
# Then the check is shown to fail on pages that lost a flag or a key. Seconds, no root.
source "$(dirname "$0")/lib.sh"
command -v groff >/dev/null || { echo "skip: no groff (groff-base)"; exit 77; }
MAN=$SRC/packaging/man
CHECK=(python3 "$SRC/tests/integration/manpage_check.py" "$BIN")
export MANPAGE_CHECK_CACHE=$WORK/cache  # the altered copies below redo only what changed

"${CHECK[@]}" "$MAN" "$SRC/packaging/agent.toml" >"$WORK/real.out" 2>&1 || true
cat "$WORK/real.out"
check "the manual pages document every flag and key" grep -qx '0 problems' "$WORK/real.out"
check "the three programs were checked" \
  test "$(grep -c '^checked \(gridnoded.8\|gridnodectl.1\|gridnode-collector.8\):' "$WORK/real.out")" -eq 3
check "gridnoded's --policy and the collector switches were among them" \
  grep -q '^checked gridnoded.8: 2 commands, [4-9][0-9] flags' "$WORK/real.out"

# mutate NAME PAGE SED-SCRIPT WANTED: the check run on a copy of the pages where PAGE went
# through SED-SCRIPT must fail, and name WANTED.
mutate() {
  local name=$1 page=$2 script=$3 wanted=$4
  rm -rf "$WORK/$name"
  cp -r "$MAN" "$WORK/$name"
  sed -i -e "$script" "$WORK/$name/$page"
  if cmp -s "$MAN/$page" "$WORK/$name/$page"; then
    fail "$name: the sed script changed nothing in $page (fix the test)"
    return
  fi
  local rc=0
  "${CHECK[@]}" "$WORK/$name" "$SRC/packaging/agent.toml" >"$WORK/$name.out" 2>&1 || rc=$?
  check "$name: the check fails" test "$rc" -eq 1
  check "$name: it says $wanted" grep -qF -- "$wanted" "$WORK/$name.out"
}
# A top-level flag's item.
mutate no-policy gridnoded.8 '/^\.BI \\-\\-policy " FILE"$/d' \
  'gridnoded.8: --policy (from gridnoded --help) is not an OPTIONS item'
# A driver missing from the --collector.NAME list.
mutate no-ipmi-switch gridnoded.8 's/", " ipmi ", " ascend/", " ascend/' \
  'gridnoded.8: --collector.ipmi: the driver ipmi is not listed'
# A subcommand's flag on its SYNOPSIS line.
mutate no-since gridnodectl.1 '/^\.RB \[ \\-\\-since$/,/^\.IR DURATION \]$/d' \
  "gridnodectl.1: --since (from gridnodectl events --help) is not on its SYNOPSIS line"
# A subcommand.
mutate no-gpus gridnodectl.1 '/^\.B gpus$/d' 'gridnodectl.1: no SYNOPSIS line for gridnodectl gpus'
# A flag that the program does not have.
mutate stale-flag gridnodectl.1 's/^\.BI \\-\\-socket " PATH"$/.BI \\-\\-sock " PATH"/' \
  'gridnodectl.1: the OPTIONS item --sock is not a flag of gridnodectl'
# The collector's flags too.
mutate no-days gridnode-collector.8 's/^\.BI \\-\\-days " N"$/.BI \\-\\-weeks " N"/' \
  'gridnode-collector.8: --days (from gridnode-collector pki init --help) is not an OPTIONS item'
# A commented-out key of agent.toml, and a whole section.
mutate no-bundle-interval agent.toml.5 '/^\.B bundle_interval$/d' \
  'agent.toml.5: [policy] bundle_interval (in the packaged agent.toml) is not an item of [policy]'
mutate no-policy-section agent.toml.5 's/^\.SH \[policy\]$/.SH POLICY/' \
  'agent.toml.5: the section [policy] of the packaged agent.toml has no heading'
# groff's warnings.
mutate groff-warning agent.toml.5 's/^\.SH \[report\]$/.SH [report]\n.XYZ/' \
  'agent.toml.5: groff warns'

finish
