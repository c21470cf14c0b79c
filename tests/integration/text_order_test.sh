#!/usr/bin/env bash
# gridnoded's code is laid out in the order of agent/gridnoded.order (CMakeLists.txt,
# GRIDNODE_ORDER_TEXT): the link really used it, and the file still names the daemon's functions.
# When code changes rename most of them the layout silently decays and resident memory grows
# back: regenerate the file with bench/text_order.sh.
source "$(dirname "$0")/lib.sh"
if [ "${GRIDNODE_TEXT_ORDERED:-OFF}" != ON ]; then
  echo "skip: this build does not order gridnoded's code (sanitizers, or no ld.lld)"
  exit 77
fi
ORDER=$SRC/agent/gridnoded.order

grep -v '^#' "$ORDER" >"$WORK/listed"
nm "$BIN/gridnoded" | awk '$2 ~ /^[tTwWiI]$/ {print $1, $3}' >"$WORK/syms"
awk '{print $2}' "$WORK/syms" | sort -u >"$WORK/defined"
listed=$(wc -l <"$WORK/listed")
present=$(sort -u "$WORK/listed" | comm -12 - "$WORK/defined" | wc -l)
echo "the order file lists $listed functions; this build defines $present of them"
check "at least 70% of the listed functions still exist (else: bench/text_order.sh)" \
  test $((present * 100)) -ge $((listed * 70))

# The listed functions' addresses, in the file's order; and the whole code's extent.
awk 'NR == FNR {addr[$2] = $1; next} ($1 in addr) {print addr[$1]}' "$WORK/syms" "$WORK/listed" \
  >"$WORK/addrs"
read -r text_size < <(size -A "$BIN/gridnoded" | awk '$1 == ".text" {print $2}')
python3 - "$WORK/addrs" "$text_size" >"$WORK/layout" <<'PY'
import sys
addrs = [int(a, 16) for a in open(sys.argv[1])]
text = int(sys.argv[2])
rising = sum(1 for a, b in zip(addrs, addrs[1:]) if b > a)
print(f"span={max(addrs) - min(addrs)} text={text} rising={rising} pairs={len(addrs) - 1}")
PY
cat "$WORK/layout"
eval "$(tr ' ' '\n' <"$WORK/layout" | sed 's/^/L_/')"
# lld placed them together: they span less than 60% of the code (unordered, they span nearly
# all of it), and mostly in the file's order (a function that shares its section with an
# earlier one, e.g. in mbedTLS's archives, goes where that section went).
check "the listed functions span $((L_span * 100 / L_text))% of .text (< 60%)" \
  test $((L_span * 100)) -lt $((L_text * 60))
check "$((L_rising * 100 / L_pairs))% of consecutive listed functions keep the file's order (>= 80%)" \
  test $((L_rising * 100)) -ge $((L_pairs * 80))
finish
