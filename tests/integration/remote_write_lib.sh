# Shared by the remote-write integration tests: sourced after lib.sh, not run. A VictoriaMetrics
# and a Prometheus on loopback ($VMPORT, $PPORT, data under $WORK), with basic auth grid:s3cret
# when AUTH=(-u grid:s3cret) is set before sourcing, and the queries the tests compare with.
for tool in victoria-metrics prometheus curl jq python3; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool not installed (./gridnode.sh deps)"; exit 1; }
done
AUTH=("${AUTH[@]}")
VMPORT=$(free_port)
PPORT=$(free_port)
while [ "$PPORT" = "$VMPORT" ]; do PPORT=$(free_port); done

# -dedup.minScrapeInterval=1ms: what the re-send window sends again is kept once.
# -search.latencyOffset=0s: the newest samples are answered at once.
start_vm() {
  local auth=()
  [ ${#AUTH[@]} -eq 0 ] || auth=(-httpAuth.username grid -httpAuth.password s3cret)
  victoria-metrics -httpListenAddr "127.0.0.1:$VMPORT" -storageDataPath "$WORK/vm" "${auth[@]}" \
    -dedup.minScrapeInterval=1ms -search.latencyOffset=0s -search.disableCache \
    -loggerLevel=ERROR 2>>"$WORK/vm.log" &
  VM=$!
  PIDS+=("$VM")
  wait_for "victoria-metrics up" 30 curl -sf "${AUTH[@]}" "http://127.0.0.1:$VMPORT/health"
}
printf 'global:\n  scrape_interval: 1m\n' >"$WORK/prometheus.yml"
if [ ${#AUTH[@]} -gt 0 ]; then
  HASH=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))')
  printf 'basic_auth_users:\n  grid: "%s"\n' "$HASH" >"$WORK/web.yml"
else
  : >"$WORK/web.yml"
fi
start_prom() {
  prometheus --config.file "$WORK/prometheus.yml" --storage.tsdb.path "$WORK/prom" \
    --web.listen-address "127.0.0.1:$PPORT" --web.config.file "$WORK/web.yml" \
    --web.enable-remote-write-receiver --log.level=error 2>>"$WORK/prom.log" &
  PROM=$!
  PIDS+=("$PROM")
  wait_for "prometheus ready" 60 curl -sf "${AUTH[@]}" "http://127.0.0.1:$PPORT/-/ready"
}

# query DB PROMQL [TIME]: the API's JSON answer (DB: vm or prom)
query() {
  local port=$VMPORT
  [ "$1" = prom ] && port=$PPORT
  curl -sf "${AUTH[@]}" --data-urlencode "query=$2" ${3:+--data-urlencode "time=$3"} \
    "http://127.0.0.1:$port/api/v1/query"
}
has_series() { [ "$(query "$1" "$2" | jq '.data.result | length')" -gt 0 ]; }
TEMP='node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp1",instance="node-1"}'
TEMP_IN_SINK='"name":"node_hwmon_temp_celsius","labels":{"chip":"platform_coretemp_0","sensor":"temp1"}'
LOAD_IN_SINK='"name":"node_load1"'

# The sampling times (ms) of node-1's reports in FILE that carry the series whose text is given
# (jq would round time_ns, beyond 2^53), and a database's samples of a series.
sink_times() {
  grep '^{"type":"report","node":"node-1"' "$1" | grep -F "$2" | grep -o '"time_ns":[0-9]*' |
    cut -d: -f2 | sed 's/......$//' | sort -n
}
db_times() {
  query "$1" "$2[1h]" | jq -r '.data.result[].values[][0] * 1000 | round' | sort -n
}
same_times() {  # DB QUERY FILE
  db_times "$1" "$2" >"$WORK/db.times"
  cmp -s "$WORK/db.times" "$3"
}
# Done when the target's position (beside SOURCE) is at SOURCE's end.
at_end() { [ "$(jq -r .offset "$1.rw-$2" 2>/dev/null)" = "$(stat -c %s "$1")" ]; }

# check_delivered DB SOURCE JOB: every report time of node_load1 and of the temperature in
# SOURCE is in DB exactly once, and count_over_time says so too.
check_delivered() {
  local db=$1 source=$2 job=$3 count reports
  sink_times "$source" "$LOAD_IN_SINK" >"$WORK/sink.times"
  sink_times "$source" "$TEMP_IN_SINK" >"$WORK/sink.temp"
  reports=$(wc -l <"$WORK/sink.times")
  local load="node_load1{instance=\"node-1\",job=\"$job\"}"
  wait_for "$db: every report" 20 same_times "$db" "$load" "$WORK/sink.times" || true
  check "$db ($job): node_load1 has each of the $reports report times exactly once" \
    same_times "$db" "$load" "$WORK/sink.times"
  if ! same_times "$db" "$load" "$WORK/sink.times"; then
    diff "$WORK/db.times" "$WORK/sink.times" | head -n 10 | sed "s/^/  $db vs sink: /"
  fi
  # Evaluated a second after the last report, and asked again for a while: once in about four
  # runs VictoriaMetrics answered one short at first while the raw samples were all there.
  local at=$(($(tail -n1 "$WORK/sink.times") / 1000 + 1))
  count_is() {
    count=$(query "$1" "count_over_time($2[10m])" "$at" | jq -r '.data.result[0].value[1]')
    [ "$count" = "$3" ]
  }
  wait_for "$db: count_over_time" 10 count_is "$db" "$load" "$reports" || true
  count_is "$db" "$load" "$reports" || true
  check "$db ($job): count_over_time equals the reports ($count, $reports)" [ "$count" = "$reports" ]
  check "$db ($job): the temperature series too" \
    same_times "$db" "${TEMP%\}},job=\"$job\"}" "$WORK/sink.temp"
}

# check_first_sample SOURCE JOB JQ_LABELS: in both databases, the first sample of the fixture's
# temperature (45 °C) under JOB is exactly the first report's in SOURCE, at its sampling time
# (ms), and its labels pass the jq filter JQ_LABELS.
check_first_sample() {
  local source=$1 job=$2 filter=$3 first j db
  for db in vm prom; do
    wait_for "the temperature in $db ($job)" 40 has_series $db "${TEMP%\}},job=\"$job\"}"
    first=$(sink_times "$source" "$TEMP_IN_SINK" | head -n1)
    j=$(query $db "${TEMP%\}},job=\"$job\"}[1h]")
    check "$db ($job): the fixture's 45 °C exactly, at the first report's sampling time (ms)" \
      [ "$(jq -r '.data.result[0].values[0] | "\((.[0] * 1000) | round) \(.[1])"' <<<"$j")" = "$first 45" ]
    check "$db ($job): labels job, instance and the node's" \
      jq_is ".data.result[0].metric | .__name__ == \"node_hwmon_temp_celsius\" and .job == \"$job\" and .instance == \"node-1\" and $filter" <<<"$j"
  done
}
