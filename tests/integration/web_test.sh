#!/usr/bin/env bash
# The agent as a node_exporter drop-in scrape target (--web.listen-address, --web.config.file):
# a real Prometheus 2.42 scrapes two agents on a fixture tree, one plain and one over TLS with
# basic auth from an exporter-toolkit web config, and its query API gives back the fixture's
# values exactly. curl and hostile clients then try what Prometheus does not: wrong passwords,
# a client certificate required after a reload, a broken web config on reload and at start,
# gzip, collect[]/exclude[], HEAD, other paths, and hostile_http.py's oversized request lines
# and headers, garbage, slowloris and a flood of connections.
source "$(dirname "$0")/lib.sh"

for tool in prometheus promtool openssl curl jq python3 gunzip; do
  command -v "$tool" >/dev/null || { echo "$tool missing (./gridnode.sh deps)"; exit 1; }
done
TREE=$FIXTURES/hwmon/nct6775/sys
CHIP=platform_nct6775_656

# --- a CA, the agent's server certificate (for 127.0.0.1) and a client certificate
P=$WORK/pki
mkdir -p "$P"
(
  cd "$P"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -subj /CN=web-test-ca -days 2
  openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=localhost
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
    -days 2 -extfile server.ext
  openssl req "${ec[@]}" -keyout client.key -out client.csr -subj /CN=prometheus
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
    -days 2 -extfile client.ext
) >"$WORK/openssl.log" 2>&1 || { cat "$WORK/openssl.log"; exit 1; }
HASH=$(python3 -W ignore -c "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))")

# exporter-toolkit's format; relative paths are relative to the file's folder.
write_web_config() {  # file client_auth_type
  local ca=""
  [ "$2" = NoClientCert ] || ca="client_ca_file: pki/ca.crt"
  cat >"$1" <<YAML
tls_server_config:
  cert_file: pki/server.crt
  key_file: pki/server.key
  client_auth_type: $2
  $ca
basic_auth_users:
  prometheus: '$HASH'
http_server_config:
  headers:
    X-Frame-Options: deny
YAML
}
write_web_config "$WORK/web.yml" NoClientCert

# --- a bad key in the web config stops the agent at start, naming file, line and key
printf 'tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n  cipher_suitez: [x]\n' \
  >"$WORK/bad-web.yml"
BADPORT=$(free_port)
printf '[agent]\ndrivers = ["hwmon"]\n' >"$WORK/bad.toml"
out=$(timeout 10 "$BIN/gridnoded" --config "$WORK/bad.toml" --sysfs-root "$TREE" \
  --socket "$WORK/bad.sock" --state-dir "$WORK/bad-state" \
  --web.listen-address="127.0.0.1:$BADPORT" --web.config.file="$WORK/bad-web.yml" 2>&1) && rc=0 || rc=$?
check "bad web config at start: non-zero exit, at once (rc=$rc)" bash -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ]' _ "$rc"
check "bad web config at start: names file, line and key" grep -q "bad-web.yml:4.*cipher_suitez" <<<"$out"
[ "$rc" -eq 0 ] || grep -q "bad-web.yml:4.*cipher_suitez" <<<"$out" || echo "  said: $out"

# --- two agents on the fixture tree: A plain, B over TLS with basic auth
start_web_agent() {  # name port flags...
  local name=$1 port=$2
  shift 2
  cat >"$WORK/$name.toml" <<TOML
[agent]
interval = 0.2
drivers = ["hwmon", "thermal"]
[control]
group = "$(id -g)"
TOML
  "$BIN/gridnoded" --config "$WORK/$name.toml" --state-dir "$WORK/$name-state" \
    --socket "$WORK/$name.sock" --sysfs-root "$TREE" --web.listen-address="127.0.0.1:$port" \
    "$@" 2>>"$WORK/$name.log" &
  PIDS+=($!)
  eval "${name}_PID=$!"
}
PA=$(free_port)
PB=$(free_port)
start_web_agent A "$PA"
start_web_agent B "$PB" --web.config.file="$WORK/web.yml"
A_URL=http://127.0.0.1:$PA
B_URL=https://127.0.0.1:$PB
TLS=(--cacert "$P/ca.crt")
wait_for "agent A answers scrapes" 15 curl -sf "$A_URL/metrics"
wait_for "agent B answers scrapes" 15 curl -sf "${TLS[@]}" -u prometheus:s3cret "$B_URL/metrics"

# --- one Prometheus scrapes both, every second
PP=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: plain
    static_configs: [{targets: ['127.0.0.1:$PA']}]
  - job_name: tls
    scheme: https
    tls_config:
      ca_file: $P/ca.crt
    basic_auth:
      username: prometheus
      password: s3cret
    static_configs: [{targets: ['127.0.0.1:$PB']}]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PP" --log.level=warn 2>"$WORK/prometheus.log" &
PIDS+=($!)
query() {  # PromQL -> the first result's value ("" when none)
  curl -sfG --data-urlencode "query=$1" "http://127.0.0.1:$PP/api/v1/query" |
    jq -r '.data.result[0].value[1] // empty'
}
both_up() { [ "$(query 'sum(up{job=~"plain|tls"})')" = 2 ]; }
if ! wait_for "Prometheus scrapes both agents" 45 both_up; then
  tail -n 20 "$WORK/prometheus.log"
  curl -s "http://127.0.0.1:$PP/api/v1/targets" | jq -c '.data.activeTargets[] | {job: .labels.job, health, lastError}' || true
fi
for job in plain tls; do
  check "Prometheus: up{job=\"$job\"} is 1" [ "$(query "up{job=\"$job\"}")" = 1 ]
  v=$(query "node_hwmon_temp_celsius{job=\"$job\",chip=\"$CHIP\",sensor=\"temp2\"}")
  check "Prometheus ($job): temp2 is the fixture's 42.5 exactly (got '$v')" [ "$v" = 42.5 ]
  v=$(query "node_hwmon_temp_celsius{job=\"$job\",chip=\"$CHIP\",sensor=\"temp3\"}")
  check "Prometheus ($job): temp3 is the fixture's -62 exactly (got '$v')" [ "$v" = -62 ]
done
inst=$(curl -sfG --data-urlencode 'query=up{job="tls"}' "http://127.0.0.1:$PP/api/v1/query" |
  jq -r '.data.result[0].metric.instance')
check "Prometheus: instance label is the target (got $inst)" [ "$inst" = "127.0.0.1:$PB" ]
# Every sample of one scrape arrived: Prometheus' count equals the body's sample lines.
curl -sf "$A_URL/metrics" >"$WORK/a.prom"
n_body=$(grep -vc '^#' "$WORK/a.prom")
n_prom=$(query 'scrape_samples_scraped{job="plain"}')
check "Prometheus stored every sample of a scrape ($n_prom of $n_body)" [ "$n_prom" = "$n_body" ]

# --- the body: what gridnodectl metrics prints, promtool-clean, text 0.0.4
"$BIN/gridnodectl" --socket "$WORK/A.sock" metrics >"$WORK/ctl.prom"
stable() { grep -vE '^gridnode_(sweep_duration_seconds|web_)' "$1"; }
check "the body is what gridnodectl metrics prints" diff <(stable "$WORK/a.prom") <(stable "$WORK/ctl.prom")
if promtool check metrics <"$WORK/a.prom" >"$WORK/lint.txt" 2>&1 && [ ! -s "$WORK/lint.txt" ]; then
  pass "promtool check metrics is clean on the scraped body"
else
  fail "promtool check metrics on the scraped body"
  cat "$WORK/lint.txt"
fi
curl -s -D "$WORK/h.txt" -o /dev/null "$A_URL/metrics"
check "Content-Type is text 0.0.4" grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$WORK/h.txt"
curl -s -D "$WORK/gz-h.txt" -H 'Accept-Encoding: gzip' -o "$WORK/body.gz" "$A_URL/metrics"
check "gzip: Content-Encoding: gzip" grep -qi '^Content-Encoding: gzip' "$WORK/gz-h.txt"
check "gzip: the body gunzips to the same text" diff <(gunzip -c "$WORK/body.gz" | stable /dev/stdin) <(stable "$WORK/a.prom")
code=$(curl -s -I -o "$WORK/head.txt" -w '%{http_code}' "$A_URL/metrics")
check "HEAD: 200 with the headers ($code)" [ "$code" = 200 ]
check "HEAD: no body, a Content-Length" grep -qi '^Content-Length: [1-9]' "$WORK/head.txt"
code=$(curl -s -o "$WORK/index.html" -w '%{http_code}' "$A_URL/")
check "/: an index page linking /metrics ($code)" bash -c '[ "$1" = 200 ] && grep -q "href=\"/metrics\"" "$2"' _ "$code" "$WORK/index.html"
code=$(curl -s -o /dev/null -w '%{http_code}' "$A_URL/nope")
check "other paths: 404 ($code)" [ "$code" = 404 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$A_URL/metrics/x")
check "a path below the telemetry path: 404 ($code)" [ "$code" = 404 ]

# --- collect[] / exclude[] select drivers by name
curl -sf "$A_URL/metrics?collect[]=hwmon" >"$WORK/c.prom"
check "collect[]=hwmon: hwmon's samples" grep -q "^node_hwmon_temp_celsius{chip=\"$CHIP\",sensor=\"temp2\"} 42.5$" "$WORK/c.prom"
check "collect[]=hwmon: no other driver" bash -c '! grep -q "driver=\"thermal\"" "$1" && grep -q "gridnode_driver_up{driver=\"hwmon\"}" "$1"' _ "$WORK/c.prom"
curl -sf "$A_URL/metrics?exclude[]=hwmon" >"$WORK/e.prom"
check "exclude[]=hwmon: no hwmon sample" bash -c '! grep -q "^node_hwmon_" "$1" && grep -q "gridnode_driver_up{driver=\"thermal\"}" "$1"' _ "$WORK/e.prom"
curl -sf "$A_URL/metrics?collect%5B%5D=hwmon&collect%5B%5D=thermal" >"$WORK/c2.prom"
check "collect[] twice, percent-encoded: both drivers" bash -c 'grep -q "driver=\"thermal\"" "$1" && grep -q "^node_hwmon_" "$1"' _ "$WORK/c2.prom"
code=$(curl -s -o "$WORK/400.txt" -w '%{http_code}' "$A_URL/metrics?collect[]=bogus")
check "collect[]=bogus: 400 naming it ($code: $(head -c 120 "$WORK/400.txt"))" bash -c '[ "$1" = 400 ] && grep -q "bogus" "$2"' _ "$code" "$WORK/400.txt"
code=$(curl -s -o /dev/null -w '%{http_code}' "$A_URL/metrics?collect[]=hwmon&exclude[]=thermal")
check "collect[] with exclude[]: 400 ($code)" [ "$code" = 400 ]

# --- TLS and basic auth (agent B)
code=$(curl -s "${TLS[@]}" -u prometheus:wrong -o /dev/null -w '%{http_code}' "$B_URL/metrics")
check "wrong password: 401 ($code)" [ "$code" = 401 ]
code=$(curl -s "${TLS[@]}" -D "$WORK/401.txt" -o /dev/null -w '%{http_code}' "$B_URL/metrics")
check "no credentials: 401 with WWW-Authenticate ($code)" bash -c '[ "$1" = 401 ] && grep -qi "^WWW-Authenticate: Basic" "$2"' _ "$code" "$WORK/401.txt"
check "wrong password: a log line" grep -qiE "unauthori[sz]ed|wrong password|authentication failed" "$WORK/B.log"
code=$(curl -s "${TLS[@]}" -u prometheus:s3cret -D "$WORK/ok.txt" -o /dev/null -w '%{http_code}' "$B_URL/metrics")
check "right password: 200 ($code)" [ "$code" = 200 ]
check "http_server_config.headers: X-Frame-Options sent" grep -qi '^X-Frame-Options: deny' "$WORK/ok.txt"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB/metrics" || true)
check "plain HTTP on the TLS port gets no metrics ($code)" [ "$code" != 200 ]
curl -sf "${TLS[@]}" -u prometheus:s3cret "$B_URL/metrics" >"$WORK/b.prom"
v=$(sed -n 's/^gridnode_web_refused_total{reason="unauthorized"} //p' "$WORK/b.prom")
check "gridnode_web_refused_total{reason=\"unauthorized\"} counts them (${v:-none})" [ "${v:-0}" -ge 2 ]

# --- SIGHUP: a client certificate is required from now on
write_web_config "$WORK/web.yml" RequireAndVerifyClientCert
kill -HUP "$B_PID"
wait_for "B reloaded" 10 grep -q "reconfigured" "$WORK/B.log"
code=$(curl -s "${TLS[@]}" -u prometheus:s3cret -o /dev/null -w '%{http_code}' "$B_URL/metrics") && rc=0 || rc=$?
check "RequireAndVerifyClientCert: no certificate, the handshake is refused (curl rc=$rc, $code)" [ "$code" = 000 ]
code=$(curl -s "${TLS[@]}" --cert "$P/client.crt" --key "$P/client.key" -u prometheus:s3cret \
  -o /dev/null -w '%{http_code}' "$B_URL/metrics")
check "RequireAndVerifyClientCert: with the client certificate, 200 ($code)" [ "$code" = 200 ]
check "a refused handshake is logged" grep -qi "handshake" "$WORK/B.log"
# A certificate the CA did not sign is refused too.
( cd "$P" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout rogue.key -out rogue.crt -subj /CN=rogue -days 2 ) >/dev/null 2>&1
code=$(curl -s "${TLS[@]}" --cert "$P/rogue.crt" --key "$P/rogue.key" -u prometheus:s3cret \
  -o /dev/null -w '%{http_code}' "$B_URL/metrics") || true
check "RequireAndVerifyClientCert: a certificate from another CA is refused ($code)" [ "$code" = 000 ]

# --- SIGHUP with a broken web config: refused, named, and the running one kept
cp "$WORK/web.yml" "$WORK/web.good"
printf 'tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n  cipher_suitez: [x]\n' >"$WORK/web.yml"
kill -HUP "$B_PID"
wait_for "B rejects the reload" 10 grep -q "reload rejected" "$WORK/B.log"
check "broken web config on reload: file, line and key in the log" grep -q "web.yml:4.*cipher_suitez" "$WORK/B.log"
code=$(curl -s "${TLS[@]}" --cert "$P/client.crt" --key "$P/client.key" -u prometheus:s3cret \
  -o /dev/null -w '%{http_code}' "$B_URL/metrics")
check "broken web config on reload: still serving as before ($code)" [ "$code" = 200 ]
check "broken web config on reload: the agent runs" kill -0 "$B_PID"
cp "$WORK/web.good" "$WORK/web.yml"

# --- hostile clients on agent A (hostile_http.py, shared with the capacity view's test): it keeps
# serving and its resident memory stays bounded. Prometheus holds one of A's 40 connections and
# the script's slowloris another while it floods: 38 are left for the flood.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$A_PID/status"; }
sanitized=0
# (An ASan build's quarantine keeps freed memory resident: its figure says nothing.)
ldd "$BIN/gridnoded" 2>/dev/null | grep -q libasan && sanitized=1
rss0=$(rss)
for round in 1 2; do
  if python3 "$SRC/tests/integration/hostile_http.py" 127.0.0.1 "$PA" --path /metrics \
    --request-timeout 10 --max-connections 38 >"$WORK/hostile.txt" 2>&1; then
    pass "hostile clients, round $round: every refusal as expected ($(grep -c '^ok' "$WORK/hostile.txt") checks)"
  else
    fail "hostile clients, round $round"
    grep -v '^ok' "$WORK/hostile.txt" | sed 's/^/  /'
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "$A_URL/metrics")
  check "after hostile round $round: a scrape is answered ($code)" [ "$code" = 200 ]
done
check "after the hostile clients: the agent runs" kill -0 "$A_PID"
rss1=$(rss)
echo "agent A resident: $rss0 KiB before the hostile clients, $rss1 KiB after"
if [ "$sanitized" -eq 0 ]; then
  check "resident memory grew by less than 1 MiB ($rss0 -> $rss1 KiB)" [ $((rss1 - rss0)) -lt 1024 ]
fi
v=$(curl -sf "$A_URL/metrics" | sed -n 's/^gridnode_web_refused_total{reason="too_many_connections"} //p')
check "gridnode_web_refused_total{reason=\"too_many_connections\"} counts the flood (${v:-none})" [ "${v:-0}" -ge 40 ]
wait_for "Prometheus still scrapes A" 10 test "$(query 'up{job="plain"}')" = 1
check "Prometheus: still up after the hostile clients" [ "$(query 'up{job="plain"}')" = 1 ]

# --- no listen address: no port
cat >"$WORK/C.toml" <<TOML
[agent]
drivers = ["hwmon"]
[control]
group = "$(id -g)"
TOML
"$BIN/gridnoded" --config "$WORK/C.toml" --state-dir "$WORK/C-state" --socket "$WORK/C.sock" \
  --sysfs-root "$TREE" 2>>"$WORK/C.log" &
C_PID=$!
PIDS+=("$C_PID")
wait_for "agent C" 10 "$BIN/gridnodectl" --socket "$WORK/C.sock" status
check "no listen address: no TCP port" bash -c '! ss -Htlnp 2>/dev/null | grep -q "pid=$1,"' _ "$C_PID"
check "with one: agent A's port is its" bash -c 'ss -Htlnp 2>/dev/null | grep -q "pid=$1,"' _ "$A_PID"

finish
