#!/usr/bin/env bash
# Signed reports end to end with real programs and stock tools: enroll, a CA made with openssl
# signs the CSR, gridnoded writes signed reports of a fixture tree, gridnode-collector inspects
# them, openssl verifies the exported signature, tampering and readable keys are refused.
source "$(dirname "$0")/lib.sh"

STATE=$WORK/state
PKI=$WORK/pki
mkdir -p "$PKI"
ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")
CFG=$WORK/agent.toml
cat >"$CFG" <<TOML
[node]
region = "east"
site = "dc1"
rack = "r12"
TOML
report() {  # report FILE: one signed report of the fixture tree
  "$BIN/gridnoded" --config "$CFG" --state-dir "$STATE" "${ROOTS[@]}" --once --report "$1"
}
inspect() { "$BIN/gridnode-collector" inspect --cert "$STATE/node.crt" "$@"; }

# --- no key yet: a clear refusal that says what to do
out=$(report "$WORK/r0.gnr" 2>&1) && rc=0 || rc=$?
check "unenrolled: --report fails" [ "$rc" -ne 0 ]
check "unenrolled: says to enroll" grep -q "gridnoded enroll" <<<"$out"

# --- enroll: key 0600, a CSR for the node id
out=$("$BIN/gridnoded" enroll --node-id node-7 --state-dir "$STATE")
check "enroll: key is 0600" [ "$(stat -c %a "$STATE/node.key")" = 600 ]
check "enroll: state dir is 0700" [ "$(stat -c %a "$STATE")" = 700 ]
check "enroll: CSR verifies with openssl" openssl req -verify -noout -in "$STATE/node.csr"
check "enroll: CSR subject is CN=node-7" bash -c "openssl req -in '$STATE/node.csr' -noout -subject | grep -q 'CN *= *node-7'"
check "enroll: prints the next step" grep -q "node.crt" <<<"$out"
key_before=$(sha256sum <"$STATE/node.key")
"$BIN/gridnoded" enroll --node-id node-7 --state-dir "$STATE" >/dev/null
check "enroll again keeps the key" [ "$(sha256sum <"$STATE/node.key")" = "$key_before" ]
out=$("$BIN/gridnoded" enroll --node-id 'bad id!' --state-dir "$WORK/other" 2>&1) && rc=0 || rc=$?
check "enroll: an invalid node id is refused" [ "$rc" -ne 0 ]

# --- the grid's CA (openssl) signs the CSR
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=test-grid-ca -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl x509 -req -in "$STATE/node.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
  -CAcreateserial -days 1 -out "$STATE/node.crt" 2>/dev/null
check "CA signed the node certificate" openssl verify -CAfile "$PKI/ca.crt" "$STATE/node.crt"

# --- one signed report, inspected
out=$(report "$WORK/r1.gnr")
check "report written" [ -s "$WORK/r1.gnr" ]
check "report summary names seq 1 and the node" grep -q "report 1 of node node-7" <<<"$out"
json=$(inspect "$WORK/r1.gnr" --export-message "$WORK/msg.bin" --export-signature "$WORK/sig.der")
check "inspect: verified" [ "$(jq -r .verified <<<"$json")" = true ]
check "inspect: node, seq, labels" [ "$(jq -r '"\(.node) \(.seq) \(.labels.site)"' <<<"$json")" = "node-7 1 dc1" ]
check "inspect: keyframe first" [ "$(jq -r .keyframe <<<"$json")" = true ]
check "inspect: samples counted" [ "$(jq -r .samples <<<"$json")" -gt 50 ]
check "inspect: encoded size given" [ "$(jq -r .encoded_bytes <<<"$json")" -gt 64 ]
boot=$(tr -d '\n' <"$FIXTURES/procfs/basic/proc/sys/kernel/random/boot_id")
check "inspect: boot id from procfs" [ "$(jq -r .boot_id <<<"$json")" = "$boot" ]
# A value as the kernel wrote it, scaled as node_exporter would: compare with our own --once.
prom=$("$BIN/gridnoded" --config "$CFG" --state-dir "$STATE" "${ROOTS[@]}" --once)
name=node_hwmon_temp_celsius
want=$(grep "^$name{" <<<"$prom" | head -1 | awk '{print $2}')
chip=$(grep "^$name{" <<<"$prom" | head -1 | sed 's/.*chip="\([^"]*\)".*sensor="\([^"]*\)".*/\1 \2/')
got=$(jq -r --arg n "$name" --arg c "${chip% *}" --arg s "${chip#* }" \
  '.metrics[] | select(.name == $n and .labels.chip == $c and .labels.sensor == $s) | .value' <<<"$json")
check "inspect: $name ${chip} = $want as in Prometheus text" [ "$got" = "$want" ]

# --- stock tools verify our signature
openssl x509 -in "$STATE/node.crt" -pubkey -noout >"$WORK/node-pub.pem"
check "openssl dgst verifies the exported signature" bash -c \
  "openssl dgst -sha256 -verify '$WORK/node-pub.pem' -signature '$WORK/sig.der' '$WORK/msg.bin' | grep -q 'Verified OK'"
printf 'x' >>"$WORK/msg.bin"
check "openssl rejects an altered message" bash -c \
  "! openssl dgst -sha256 -verify '$WORK/node-pub.pem' -signature '$WORK/sig.der' '$WORK/msg.bin' >/dev/null 2>&1"

# --- the chain goes on across runs: seq 2 links to seq 1
report "$WORK/r2.gnr" >/dev/null
json2=$(inspect "$WORK/r2.gnr")
check "second run: seq 2" [ "$(jq -r .seq <<<"$json2")" = 2 ]
check "second run: prev = digest of report 1" [ "$(jq -r .prev <<<"$json2")" = "$(jq -r .digest <<<"$json")" ]
# Both reports in one file: magic, then the frames of each.
{ cat "$WORK/r1.gnr"; tail -c +9 "$WORK/r2.gnr"; } >"$WORK/both.gnr"
both=$(inspect "$WORK/both.gnr")
check "two reports in one file: chain first, next" [ "$(jq -r .chain <<<"$both" | tr '\n' ' ')" = "first next " ]
# Reordered: 2 then 1.
{ cat "$WORK/r2.gnr"; tail -c +9 "$WORK/r1.gnr"; } >"$WORK/swapped.gnr"
check "reordered reports: the older one is flagged" [ "$(inspect "$WORK/swapped.gnr" | jq -r .chain | tr '\n' ' ')" = "first replay " ]

# --- several reports in a row: a keyframe, then deltas that leave out what did not change
out=$("$BIN/gridnoded" --config "$CFG" --state-dir "$STATE" "${ROOTS[@]}" --interval 0.05 \
  --once --report "$WORK/r5.gnr" --reports 5)
check "--reports 5: summary names seqs 3-7" grep -q "reports 3-7 of node node-7" <<<"$out"
many=$(inspect "$WORK/r5.gnr")
check "--reports 5: five verified reports" [ "$(jq -s 'map(select(.verified)) | length' <<<"$many")" = 5 ]
check "--reports 5: chain first, then next" [ "$(jq -r .chain <<<"$many" | tr '\n' ' ')" = "first next next next next " ]
check "--reports 5: only the first is a keyframe" [ "$(jq -r .keyframe <<<"$many" | tr '\n' ' ')" = "true false false false false " ]
check "--reports 5: every report has its node and values" [ "$(jq -s 'map(select(.node == "node-7" and (.metrics | length) > 50)) | length' <<<"$many")" = 5 ]
first=$(jq -s '.[0].encoded_bytes' <<<"$many")
later=$(jq -s '.[4].encoded_bytes' <<<"$many")
check "--reports 5: a steady-state report is much smaller than the keyframe ($later < $first)" [ "$((later * 2))" -lt "$first" ]
check "--reports 5: steady state at most 2 bytes per sample" bash -c "jq -s '.[4].bytes_per_sample <= 2' <<<'$many' | grep -q true"

# --- a flipped byte in the signed report: not verified, exit 1
size=$(stat -c %s "$WORK/r1.gnr")
cp "$WORK/r1.gnr" "$WORK/tampered.gnr"
pos=$((size - 80))  # inside the values, before the signature
orig=$(od -An -tu1 -j "$pos" -N1 "$WORK/tampered.gnr" | tr -d ' ')
printf "$(printf '\\%03o' $(((orig ^ 1) & 255)))" | dd of="$WORK/tampered.gnr" bs=1 seek="$pos" conv=notrunc status=none
out=$(inspect "$WORK/tampered.gnr") && rc=0 || rc=$?
check "tampered: exit 1" [ "$rc" -eq 1 ]
check "tampered: verified false" [ "$(jq -r .verified <<<"$out")" = false ]
# Another node's certificate does not verify it either.
"$BIN/gridnoded" enroll --node-id node-8 --state-dir "$WORK/n8" >/dev/null
openssl x509 -req -in "$WORK/n8/node.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
  -CAcreateserial -days 1 -out "$WORK/n8/node.crt" 2>/dev/null
out=$("$BIN/gridnode-collector" inspect --cert "$WORK/n8/node.crt" "$WORK/r1.gnr") && rc=0 || rc=$?
check "another node's certificate: exit 1" [ "$rc" -eq 1 ]
# Garbage and truncation: a clear error, exit 2, no crash.
head -c 100 "$WORK/r1.gnr" >"$WORK/cut.gnr"
out=$(inspect "$WORK/cut.gnr" 2>&1) && rc=0 || rc=$?
check "truncated file: exit 2 with a message" bash -c "[ $rc -eq 2 ] && grep -q truncated <<<'$out'"
head -c 3000 /dev/urandom >"$WORK/garbage.gnr"
out=$(inspect "$WORK/garbage.gnr" 2>&1) && rc=0 || rc=$?
check "garbage: exit 2" [ "$rc" -eq 2 ]

# --- a file whose frames are not what the node signed, around a valid signature
run_inspect() {  # run_inspect ARGS...: stdout in $out, stderr in $err, exit status in $rc
  out=$(inspect "$@" 2>"$WORK/err") && rc=0 || rc=$?
  err=$(<"$WORK/err")
}
says() { [ "$rc" -eq "$1" ] && grep -q -- "$2" <<<"$err"; }  # says STATUS TEXT-ON-STDERR
# r1.gnr is the magic, the catalog frame, the report frame (kind, varint length, payload).
enc=$(jq -r .encoded_bytes <<<"$json")
rlen=$((1 + enc))
for ((n = enc; n > 0; n >>= 7)); do rlen=$((rlen + 1)); done
size=$(stat -c %s "$WORK/r1.gnr")
head -c 8 "$WORK/r1.gnr" >"$WORK/magic"
head -c $((size - rlen)) "$WORK/r1.gnr" | tail -c +9 >"$WORK/catalog.frame"
tail -c "$rlen" "$WORK/r1.gnr" >"$WORK/report.frame"
check "the frames put together are r1.gnr" bash -c "cat '$WORK/magic' '$WORK/catalog.frame' '$WORK/report.frame' | cmp -s - '$WORK/r1.gnr'"
# One letter of a chip's name in the catalog: it still decodes, but its digest is another.
pos=$(grep -boa coretemp "$WORK/catalog.frame" | head -1 | cut -d: -f1)
cp "$WORK/catalog.frame" "$WORK/altered.frame"
printf d | dd of="$WORK/altered.frame" bs=1 seek="$pos" conv=notrunc status=none
cat "$WORK/magic" "$WORK/altered.frame" "$WORK/report.frame" >"$WORK/altered.gnr"
run_inspect "$WORK/altered.gnr"
check "altered catalog: exit 1, stderr says altered or corrupt" says 1 "catalog at byte 8 .* matches no catalog a report names: the file was altered or is corrupt"
check "altered catalog: the report is not verified, its signature is valid" \
  jq_is 'select(.type == "report") | .verified == false and .signature_valid and (.error | test("values not verified: catalog [0-9a-f]+ is not in the file"))' <<<"$out"
check "altered catalog: a catalog line says so" \
  jq_is 'select(.type == "catalog") | .verified == false and .offset == 8 and (.error | test("altered or is corrupt"))' <<<"$out"
run_inspect --signature-only "$WORK/altered.gnr"
check "altered catalog, --signature-only: exit 0, the catalog noted" says 0 "not checked: --signature-only"
check "altered catalog, --signature-only: verified true" jq_is '.verified and .signature_valid and .metrics == []' <<<"$out"
run_inspect "$WORK/r1.gnr"
check "untouched file: exit 0, verified, nothing on stderr" bash -c "[ $rc -eq 0 ] && [ -z '$err' ] && [ \"\$(jq -r .verified <<<'$out')\" = true ]"
run_inspect --signature-only "$WORK/r1.gnr"
check "untouched file, --signature-only: exit 0, values read" bash -c "[ $rc -eq 0 ] && [ \"\$(jq '.metrics | length' <<<'$out')\" -gt 50 ]"
cat "$WORK/magic" "$WORK/catalog.frame" "$WORK/altered.frame" "$WORK/report.frame" >"$WORK/two.gnr"
run_inspect "$WORK/two.gnr"
check "two catalogs, one named by no report: exit 1" says 1 "matches no catalog a report names"
check "two catalogs: the report itself verifies" jq_is 'select(.type == "report") | .verified' <<<"$out"
cat "$WORK/magic" "$WORK/catalog.frame" "$WORK/catalog.frame" "$WORK/report.frame" >"$WORK/twice.gnr"
run_inspect "$WORK/twice.gnr"
check "the same catalog twice: exit 0" [ "$rc" -eq 0 ]
cat "$WORK/magic" "$WORK/report.frame" "$WORK/catalog.frame" >"$WORK/late.gnr"
run_inspect "$WORK/late.gnr"
check "catalog after its report: exit 1" says 1 "is not in the file before it"
cat "$WORK/magic" "$WORK/report.frame" >"$WORK/nocatalog.gnr"
run_inspect "$WORK/nocatalog.gnr"
check "no catalog: exit 1" says 1 "values not verified: catalog [0-9a-f]* is not in the file"
{ cat "$WORK/r1.gnr"; printf '\377\001\002'; } >"$WORK/appended.gnr"
run_inspect "$WORK/appended.gnr"
check "garbage appended: exit 2, an unknown frame kind" says 2 "unknown frame kind 255"
{ cat "$WORK/r1.gnr"; printf '\022\000'; } >"$WORK/session.gnr"
run_inspect "$WORK/session.gnr"
check "a session frame appended: exit 2" says 2 "frame of kind 18 at byte $size does not belong in a report file"
head -c $((size - 10)) "$WORK/r1.gnr" >"$WORK/cut-report.gnr"
run_inspect "$WORK/cut-report.gnr"
check "cut inside the report: exit 2, truncated" says 2 "truncated"
cat "$WORK/magic" "$WORK/catalog.frame" >"$WORK/catalog-only.gnr"
run_inspect "$WORK/catalog-only.gnr"
check "cut after the catalog: exit 2, no report" says 2 "no report in the file"

# --- the daemon signs a report every round, and numbering survives kill -9
CTL=("$BIN/gridnodectl" --socket "$WORK/d.sock")
start_daemon() {
  "$BIN/gridnoded" --config "$CFG" --state-dir "$STATE" "${ROOTS[@]}" --socket "$WORK/d.sock" \
    --interval 0.05 2>>"$WORK/daemon.log" &
  DAEMON=$!
  PIDS+=("$DAEMON")
}
report_seq() { "${CTL[@]}" status --json | jq -r .report.seq; }
seq_above() { [ "$(report_seq)" -gt "$1" ]; }
start_daemon
wait_for "daemon signs reports" 10 seq_above 8
check "daemon: status names the node" [ "$("${CTL[@]}" status --json | jq -r .report.node)" = node-7 ]
check "daemon: steady-state reports of at most 2 bytes per sample" \
  [ "$("${CTL[@]}" status --json | jq -r '.report.last_bytes_per_sample <= 2')" = true ]
check "daemon: human status has a reports line" bash -c "'${CTL[0]}' --socket '$WORK/d.sock' status | grep -q '^reports: node node-7, seq'"
{ kill -9 "$DAEMON" && wait "$DAEMON"; } 2>/dev/null || true
killed_at=$(sed -n 's/^seq 0*//p' "$STATE/report.chain")
check "kill -9: the chain file holds the last report ($killed_at)" [ "${killed_at:-0}" -gt 8 ]
start_daemon
wait_for "daemon signs again" 10 seq_above "$killed_at"
check "after kill -9: numbering goes on past $killed_at" seq_above "$killed_at"
kill "$DAEMON"
wait "$DAEMON" 2>/dev/null || true
stopped_at=$(sed -n 's/^seq 0*//p' "$STATE/report.chain")
report "$WORK/r6.gnr" >/dev/null
check "--once after the daemon: seq $((stopped_at + 1))" [ "$(inspect "$WORK/r6.gnr" | jq -r .seq)" = $((stopped_at + 1)) ]

# --- a key others can read is refused, like ssh does
chmod 0644 "$STATE/node.key"
out=$(report "$WORK/r3.gnr" 2>&1) && rc=0 || rc=$?
check "readable key: --report refused" [ "$rc" -ne 0 ]
check "readable key: says why and how to fix" grep -q "too open" <<<"$out"
out=$("$BIN/gridnoded" --config "$CFG" --state-dir "$STATE" "${ROOTS[@]}" --socket "$WORK/s.sock" 2>&1) && rc=0 || rc=$?
check "readable key: the daemon does not start" bash -c "[ $rc -ne 0 ] && grep -q 'too open' <<<'$out'"
chmod 0600 "$STATE/node.key"

# --- a configured id that disagrees with the certificate is an error
printf '[node]\nid = "node-9"\n' >"$WORK/wrong.toml"
out=$("$BIN/gridnoded" --config "$WORK/wrong.toml" --state-dir "$STATE" "${ROOTS[@]}" --once --report "$WORK/r4.gnr" 2>&1) && rc=0 || rc=$?
check "configured id != certificate CN: refused" bash -c "[ $rc -ne 0 ] && grep -q 'disagrees' <<<'$out'"

finish
