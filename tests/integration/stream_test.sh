#!/usr/bin/env bash
# The whole path with real processes on loopback: gridnoded streams signed reports over mutual
# TLS to gridnode-collector, both are killed with SIGKILL and restarted several times, the
# collector is away for a while, the spool reaches its bound; afterwards the sink holds every
# report exactly once, in order, as whole JSON lines, and the losses the agent chose are signed
# gap records. Foreign certificates and plaintext are refused while others are served.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_lib.sh"

COL=$BIN/gridnode-collector
P=$WORK/pki
"$COL" pki init --dir "$P" --nodes node-1,node-2,node-3 >/dev/null
STATE=$WORK/state
mkdir -m 700 "$STATE"
install -m 600 "$P/nodes/node-1.key" "$STATE/node.key"
install -m 644 "$P/nodes/node-1.crt" "$STATE/node.crt"
PORT=$(free_port)
SINK=$WORK/sink.jsonl
cat >"$WORK/agent.toml" <<TOML
[agent]
interval = 0.05
[upstream]
endpoints = ["127.0.0.1:$PORT"]
ca = "$P/ca.crt"
[report]
keyframe_interval = 10
TOML
ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")

start_collector() {
  "$COL" serve --listen "127.0.0.1:$PORT" --ca "$P/ca.crt" --cert "$P/collector.crt" \
    --key "$P/collector.key" --sink "$SINK" 2>>"$WORK/collector.log" &
  COLLECTOR=$!
  PIDS+=("$COLLECTOR")
  wait_for "collector listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"
}

start_collector
start_agent
wait_for "first acknowledgements" 20 acked_above 10
check "status: uplink streaming to the collector" [ "$(status | jq -r '"\(.uplink.state) \(.uplink.connected_to)"')" = "streaming 127.0.0.1:$PORT" ]
check "status: human view has uplink and spool lines" bash -c "'${CTL[0]}' --socket '$WORK/a.sock' status | grep -q '^uplink: streaming to 127.0.0.1:$PORT' && '${CTL[0]}' --socket '$WORK/a.sock' status | grep -q '^spool: '"

# --- two more nodes at the same time, each its own chain in the same sink
OTHERS=()
for n in 2 3; do
  mkdir -m 700 "$WORK/n$n"
  install -m 600 "$P/nodes/node-$n.key" "$WORK/n$n/node.key"
  install -m 644 "$P/nodes/node-$n.crt" "$WORK/n$n/node.crt"
  "$BIN/gridnoded" --state-dir "$WORK/n$n" --socket "$WORK/n$n.sock" "${ROOTS[@]}" --interval 0.05 \
    --upstream "127.0.0.1:$PORT" --ca "$P/ca.crt" 2>>"$WORK/n$n.log" &
  OTHERS+=($!)
  PIDS+=($!)
done
node_reports() { jq -r --arg n "$1" 'select(.type == "report" and .node == $n) | .seq' "$SINK"; }
wait_for "node-2 and node-3 stored" 20 bash -c "[ \$(jq -r 'select(.type == \"report\" and .node == \"node-3\") | .seq' '$SINK' | wc -l) -gt 10 ] && [ \$(jq -r 'select(.type == \"report\" and .node == \"node-2\") | .seq' '$SINK' | wc -l) -gt 10 ]"
for p in "${OTHERS[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
for n in node-2 node-3; do
  check "$n: its own chain from 1, each report once" \
    [ "$(node_reports $n | sort -n | awk 'NR != $1 {bad = 1} END {print (NR > 10 && !bad) ? "ok" : "bad"}')" = ok ]
done

# --- kill -9 both sides, several times, at random moments
for round in 1 2 3; do
  sleep "0.$((RANDOM % 5 + 1))"
  kill9 "$COLLECTOR"
  sleep "0.$((RANDOM % 4 + 1))"
  start_collector
  sleep "0.$((RANDOM % 5 + 1))"
  kill9 "$AGENT"
  start_agent
  before=$(acked)
  wait_for "round $round: acknowledgements go on" 20 acked_above "$before"
done

# --- the collector away for a while: reports wait in the spool, then drain in order
kill9 "$COLLECTOR"
sleep 1.5
check "collector away: reports wait in the spool" [ "$(status | jq -r '.spool.unacked')" -gt 5 ]
check "collector away: the uplink says it is not connected" [ "$(status | jq -r '.uplink.state')" != streaming ]
start_collector
newest=$(status | jq -r '.spool.newest_seq')
wait_for "backlog drained" 30 acked_above "$newest"

# --- stop cleanly once everything is acknowledged, and read the sink
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
last=$(sed -n 's/^seq 0*//p' "$STATE/report.chain")
kill -TERM "$COLLECTOR"
wait "$COLLECTOR" 2>/dev/null || true
check "every sink line is whole JSON" bash -c "jq -c . '$SINK' >/dev/null"
n=$(node_reports node-1 | wc -l)
unique=$(node_reports node-1 | sort -n | uniq | wc -l)
first_missing=$(node_reports node-1 | sort -n | awk 'NR != $1 {print NR; exit}')
check "sink: every report exactly once ($n lines, $unique distinct)" [ "$n" -eq "$unique" ]
check "sink: no report missing from 1 (${first_missing:-none})" [ -z "$first_missing" ]
max=$(node_reports node-1 | sort -n | tail -1)
check "sink: it holds the agent's reports up to at least $((last - 2)) (has $max)" [ "$max" -ge "$((last - 2))" ]
check "sink: in order" bash -c "[ \"\$(jq -r 'select(.type == \"report\" and .node == \"node-1\") | .seq' '$SINK' | sort -n -c 2>&1)\" = '' ]"
check "sink: no gap record (the spool never reached its bound)" [ "$(jq -r 'select(.type == "gap")' "$SINK" | wc -c)" -eq 0 ]
check "sink: values decoded for every report" [ "$(jq -r 'select(.type == "report" and (.metrics | length) == 0) | .seq' "$SINK" | wc -l)" -eq 0 ]
check "sink: each report names its verifying signature" [ "$(jq -r 'select(.type == "report" and .verified_by < .seq)' "$SINK" | wc -c)" -eq 0 ]

# --- the spool's bound: a small spool, the collector away, reports dropped and said so
cat >>"$WORK/agent.toml" <<TOML
[spool]
max_bytes = 65536
TOML
start_agent
wait_for "spool full" 30 bash -c "[ \"\$('${CTL[0]}' --socket '$WORK/a.sock' status --json | jq -r '.spool.reports_dropped')\" -gt 0 ]"
used=$(du -sb "$STATE/spool" | awk '{print $1}')
check "spool full: disk use within the bound ($used bytes)" [ "$used" -le $((65536 + 4096 + 8192)) ]
start_collector
wait_for "gap record upstream" 30 bash -c "grep -q '\"type\":\"gap\"' '$SINK'"
check "spool full: a gap record reached the sink" grep -q '"type":"gap"' "$SINK"
gap=$(jq -c 'select(.type == "gap")' "$SINK" | head -1)
check "spool full: the gap names the dropped reports ($(jq -r '"\(.from_seq)-\(.to_seq)"' <<<"$gap"))" \
  [ "$(jq -r '.from_seq > 0 and .to_seq >= .from_seq and .node == "node-1"' <<<"$gap")" = true ]

# --- refused: another CA's node, and plaintext; the collector keeps serving node-1
"$COL" pki init --dir "$WORK/other" --nodes node-1 >/dev/null
mkdir -m 700 "$WORK/s2"
install -m 600 "$WORK/other/nodes/node-1.key" "$WORK/s2/node.key"
install -m 644 "$WORK/other/nodes/node-1.crt" "$WORK/s2/node.crt"
timeout 5 "$BIN/gridnoded" --state-dir "$WORK/s2" --socket "$WORK/b.sock" "${ROOTS[@]}" --interval 0.1 \
  --upstream "127.0.0.1:$PORT" --ca "$WORK/other/ca.crt" 2>"$WORK/foreign.log" || true
check "foreign CA: the agent says the collector is not trusted" grep -q "connection failed" "$WORK/foreign.log"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 3 socat - "TCP:127.0.0.1:$PORT" >/dev/null 2>&1 || true
before=$(acked)
wait_for "node-1 still served" 20 acked_above "$before"
# An oversized frame after a proper hello, over a real TLS session made with openssl.
hello='\x10\x0a\x01\x06node-1\x01\x00'
huge='\x02\x80\x80\xc0\x02'  # a report frame announcing 5 MiB (the limit is 4 MiB)
{ printf "$hello$huge"; sleep 1; } | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$PORT" \
  -cert "$P/nodes/node-1.crt" -key "$P/nodes/node-1.key" -CAfile "$P/ca.crt" >/dev/null 2>&1 || true
check "oversized frame: refused and logged" grep -q "exceeds the limit" "$WORK/collector.log"
# Failover: the first endpoint is dead, the second serves.
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
DEAD=$(free_port)
start_agent --upstream "127.0.0.1:$DEAD" --upstream "127.0.0.1:$PORT"
wait_for "failover to the second endpoint" 20 bash -c "[ \"\$('${CTL[0]}' --socket '$WORK/a.sock' status --json | jq -r .uplink.connected_to)\" = 127.0.0.1:$PORT ]"
check "failover: connected to the second endpoint" [ "$(status | jq -r .uplink.connected_to)" = "127.0.0.1:$PORT" ]
# Pinning the collector's public key: the right pin connects, another one does not.
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
pin=$(openssl x509 -in "$P/collector.crt" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
printf '\n[upstream]\nendpoints = ["127.0.0.1:%s"]\nca = "%s"\npin = "%s"\n' "$PORT" "$P/ca.crt" "$pin" >"$WORK/pinned.toml"
printf '\n[upstream]\nendpoints = ["127.0.0.1:%s"]\nca = "%s"\npin = "%s"\n' "$PORT" "$P/ca.crt" "$(printf '0%.0s' $(seq 64))" >"$WORK/wrongpin.toml"
"$BIN/gridnoded" --config "$WORK/pinned.toml" --state-dir "$STATE" --socket "$WORK/a.sock" "${ROOTS[@]}" --interval 0.1 2>"$WORK/pinned.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for "pinned: streaming" 20 bash -c "[ \"\$('${CTL[0]}' --socket '$WORK/a.sock' status --json | jq -r .uplink.state)\" = streaming ]"
check "pinned key: the right pin connects" [ "$(status | jq -r .uplink.state)" = streaming ]
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
timeout 4 "$BIN/gridnoded" --config "$WORK/wrongpin.toml" --state-dir "$STATE" --socket "$WORK/a.sock" "${ROOTS[@]}" --interval 0.1 2>"$WORK/wrongpin.log" || true
check "pinned key: another pin is refused" bash -c "grep -q 'connection failed' '$WORK/wrongpin.log' && ! grep -q 'uplink: connected' '$WORK/wrongpin.log'"
# --- crafted sessions: a Python TLS client with node-1's own certificate (hostile_client.py)
HC=(python3 "$SRC/tests/integration/hostile_client.py" 127.0.0.1 "$PORT" "$P/ca.crt")
NODE1=("$P/nodes/node-1.crt" "$P/nodes/node-1.key" node-1)
last=$(jq -c 'select(.type == "report" and .node == "node-1")' "$SINK" | tail -1)
jq -r 'select(.type == "report" and .node == "node-1" and .seq == 3) | .raw' "$SINK" | base64 -d >"$WORK/old.bin"
out=$("${HC[@]}" "${NODE1[@]}" "report:$WORK/old.bin")
check "a replayed report is refused ($out)" grep -q "^reject .*replayed" <<<"$out"
jq -r .raw <<<"$last" | base64 -d >"$WORK/last.bin"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[60] ^= 1; open(sys.argv[2], "wb").write(b)' \
  "$WORK/last.bin" "$WORK/altered.bin"
out=$("${HC[@]}" "${NODE1[@]}" "report:$WORK/altered.bin")
check "an altered report is refused ($out)" grep -q "^reject" <<<"$out"
# A report that follows node-1's chain exactly but is signed by another key (the other PKI's
# node-1): its link holds, its signature does not.
printf 'seq %020d\ndigest %s\n' "$(jq -r .seq <<<"$last")" "$(jq -r .digest <<<"$last")" >"$WORK/s2/report.chain"
"$BIN/gridnoded" --state-dir "$WORK/s2" "${ROOTS[@]}" --once --report "$WORK/forged.gnr" >/dev/null
python3 - "$WORK/forged.gnr" "$WORK" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()[8:]
pos = 0
while pos < len(data):
    kind = data[pos]; pos += 1
    shift = length = 0
    while True:
        b = data[pos]; pos += 1
        length |= (b & 0x7F) << shift; shift += 7
        if b < 0x80: break
    name = {1: "forged_cat.bin", 2: "forged.bin"}[kind]
    open(sys.argv[2] + "/" + name, "wb").write(data[pos:pos + length]); pos += length
PY
out=$("${HC[@]}" "${NODE1[@]}" "catalog:$WORK/forged_cat.bin" "report:$WORK/forged.bin")
check "a report signed by another key is refused ($out)" grep -q "^reject .*signature" <<<"$out"
# Another CA's client certificate, and an expired one from the right CA.
out=$("${HC[@]}" "$WORK/other/nodes/node-1.crt" "$WORK/other/nodes/node-1.key" node-1)
check "a client certificate from another CA is refused" bash -c "! grep -q welcome <<<'$out'"
mkdir -p "$WORK/ca-db"
: >"$WORK/ca-db/index.txt"
echo 1000 >"$WORK/ca-db/serial"
cat >"$WORK/ca-db/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $WORK/ca-db/index.txt
new_certs_dir = $WORK/ca-db
serial = $WORK/ca-db/serial
default_md = sha256
policy = p
[p]
commonName = supplied
CNF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node-1 \
  -keyout "$WORK/expired.key" -out "$WORK/expired.csr" 2>/dev/null
openssl ca -batch -config "$WORK/ca-db/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
  -in "$WORK/expired.csr" -out "$WORK/expired.crt" -startdate 20200101000000Z \
  -enddate 20200102000000Z -notext >/dev/null 2>&1
out=$("${HC[@]}" "$WORK/expired.crt" "$WORK/expired.key" node-1)
check "an expired client certificate is refused" bash -c "[ -s '$WORK/expired.crt' ] && ! grep -q welcome <<<'$out'"
check "collector: the expired certificate is named in its log" grep -q "expired" "$WORK/collector.log"
check "collector: refusals logged" grep -q "rejected" "$WORK/collector.log"
check "collector still running" kill -0 "$COLLECTOR"
before=$(jq -r 'select(.type == "report") | .seq' "$SINK" | wc -l)
start_agent
wait_for "node-1 served after all that" 20 bash -c "[ \$(jq -r 'select(.type == \"report\") | .seq' '$SINK' | wc -l) -gt $before ]"
check "the collector keeps serving node-1 after the refusals" [ "$(jq -r 'select(.type == "report") | .seq' "$SINK" | wc -l)" -gt "$before" ]

finish
