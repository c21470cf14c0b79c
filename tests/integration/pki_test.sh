#!/usr/bin/env bash
# gridnode-collector pki: the throw-away PKI checked with stock openssl, and used end to end
# (an enrolled node's CSR signed, a report signed with that identity verified).
source "$(dirname "$0")/lib.sh"

COL=("$BIN/gridnode-collector")
P=$WORK/pki
out=$("${COL[@]}" pki init --dir "$P" --nodes node-1,node-2 --collector-name collector.example --collector-name 10.1.2.3)
check "init: says what it wrote" grep -q "2 node certificates" <<<"$out"
for f in ca collector nodes/node-1 nodes/node-2; do
  check "init: $f.key is 0600" [ "$(stat -c %a "$P/$f.key")" = 600 ]
done
check "openssl: collector and node certificates chain to the CA" \
  openssl verify -CAfile "$P/ca.crt" "$P/collector.crt" "$P/nodes/node-1.crt" "$P/nodes/node-2.crt"
text=$(openssl x509 -in "$P/collector.crt" -noout -text)
check "collector: SAN has localhost, 127.0.0.1, ::1 and the extra names" bash -c \
  "grep -q 'DNS:localhost, DNS:collector.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3' <<<'$text'"
check "collector: serverAuth" grep -q "TLS Web Server Authentication" <<<"$text"
check "node: clientAuth, CN=node-1" bash -c \
  "openssl x509 -in '$P/nodes/node-1.crt' -noout -text | grep -q 'TLS Web Client Authentication' && openssl x509 -in '$P/nodes/node-1.crt' -noout -subject | grep -q 'CN *= *node-1'"
check "CA: CA:TRUE" bash -c "openssl x509 -in '$P/ca.crt' -noout -text | grep -q 'CA:TRUE'"
check "node key matches its certificate" bash -c \
  "[ \"\$(openssl pkey -in '$P/nodes/node-1.key' -pubout)\" = \"\$(openssl x509 -in '$P/nodes/node-1.crt' -noout -pubkey)\" ]"
out=$("${COL[@]}" pki init --dir "$P" --nodes x 2>&1) && rc=0 || rc=$?
check "init again: refuses to replace the CA" bash -c "[ $rc -ne 0 ] && grep -q 'refusing' <<<'$out'"
out=$("${COL[@]}" pki init --dir "$WORK/p2" --nodes 'bad id' 2>&1) && rc=0 || rc=$?
check "init: an invalid node id is refused" [ "$rc" -ne 0 ]

# --- an enrolled node's request, signed, then used
STATE=$WORK/state
"$BIN/gridnoded" enroll --node-id node-3 --state-dir "$STATE" >/dev/null
out=$("${COL[@]}" pki sign --dir "$P" --csr "$STATE/node.csr" --out "$STATE/node.crt")
check "sign: names the node" grep -q "for node node-3" <<<"$out"
check "openssl: the signed certificate chains to the CA" openssl verify -CAfile "$P/ca.crt" "$STATE/node.crt"
"$BIN/gridnoded" --state-dir "$STATE" --sysfs-root "$FIXTURES/hwmon/coretemp/sys" \
  --procfs-root "$FIXTURES/procfs/basic/proc" --once --report "$WORK/r.gnr" >/dev/null
json=$("${COL[@]}" inspect --cert "$STATE/node.crt" "$WORK/r.gnr")
check "report signed with the PKI's certificate verifies" [ "$(jq -r '.verified and .node == "node-3"' <<<"$json")" = true ]
# A request whose signature is not by its own key: refused.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node-4 \
  -keyout "$WORK/k4" -out "$WORK/r4.csr" 2>/dev/null
python3 - "$WORK/r4.csr" "$WORK/bad.csr" <<'PY'
import base64, sys
lines = open(sys.argv[1]).read().split("\n")
body = base64.b64decode("".join(l for l in lines if l and not l.startswith("-----")))
body = body[:-3] + bytes([body[-3] ^ 1]) + body[-2:]  # a flipped bit inside the signature
b64 = base64.b64encode(body).decode()
open(sys.argv[2], "w").write("-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(b64[i:i+64] for i in range(0, len(b64), 64)) + "\n-----END CERTIFICATE REQUEST-----\n")
PY
out=$("${COL[@]}" pki sign --dir "$P" --csr "$WORK/bad.csr" --out "$WORK/bad.crt" 2>&1) && rc=0 || rc=$?
check "sign: a request with a bad self-signature is refused" bash -c "[ $rc -ne 0 ] && [ ! -e '$WORK/bad.crt' ]"
out=$("${COL[@]}" pki sign --dir "$P" --csr "$WORK/r4.csr" --out "$WORK/ok4.crt" 2>&1)
check "sign: openssl's own request is accepted" openssl verify -CAfile "$P/ca.crt" "$WORK/ok4.crt"
head -c 200 /dev/urandom >"$WORK/garbage.csr"
out=$("${COL[@]}" pki sign --dir "$P" --csr "$WORK/garbage.csr" --out "$WORK/g.crt" 2>&1) && rc=0 || rc=$?
check "sign: garbage is refused with a message" bash -c "[ $rc -ne 0 ] && [ -n '$out' ]"

finish
