#!/usr/bin/env bash
# Prometheus remote_write from `gridnode-collector export`: collectors publish to JetStream, the
# exporter writes the archive and sends it (URL flags, no auth) to a real VictoriaMetrics 1.79
# and Prometheus 2.42. The exporter and VictoriaMetrics are killed with SIGKILL mid-stream; a
# final `export --drain` returns once both targets hold everything, and each holds every report
# of the archive exactly once per series.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/jetstream_lib.sh"
AUTH=()
source "$(dirname "$0")/remote_write_lib.sh"
command -v nats-server >/dev/null || { echo "FAIL - nats-server missing (./gridnode.sh deps)"; exit 1; }
COL=$BIN/gridnode-collector

mkdir "$WORK/nats"
nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p -1 --ports_file_dir "$WORK/nats" \
  2>"$WORK/nats/log" &
PIDS+=($!)
wait_for "nats-server ports" 10 bash -c "ls '$WORK'/nats/*.ports"
PORTS_FILE=$(ls "$WORK"/nats/*.ports)
wait_for "nats-server ports written" 10 jq -e '.nats[0]' "$PORTS_FILE"
NATS=$(jq -r '.nats[0]' "$PORTS_FILE")

setup_failover_agent
ROOTS=(--sysfs-root "$FIXTURES/hwmon/coretemp/sys" --procfs-root "$FIXTURES/procfs/basic/proc")
"$COL" serve --listen "127.0.0.1:$PORT_A" --ca "$P/ca.crt" --cert "$P/collector.crt" \
  --key "$P/collector.key" --sink "$NATS" --max-bytes 268435456 2>>"$WORK/collector.log" &
PIDS+=($!)
wait_for "collector listening" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_A"

start_vm
start_prom
ARCHIVE=$WORK/archive.jsonl
RW=(--remote-write "http://127.0.0.1:$VMPORT/api/v1/write"
  --remote-write "http://127.0.0.1:$PPORT/api/v1/write" --remote-write-job grid-export)
start_export() {
  "$COL" export --from "$NATS" --sink "$ARCHIVE" "${RW[@]}" "$@" 2>>"$WORK/export.log" &
  EXPORT=$!
  PIDS+=("$EXPORT")
}
start_export
start_agent
check_first_sample "$ARCHIVE" grid-export '.region == "east" and .site == "dc1"'

sleep 1
kill9 "$EXPORT"
sleep 0.5
start_export
sleep 1
kill9 "$VM"
sleep 1
start_vm
sleep 1
kill9 "$EXPORT"
kill -TERM "$AGENT"
wait "$AGENT" 2>/dev/null || true
sleep 1  # the last reports into the stream

drained() { "$COL" export --from "$NATS" --sink "$ARCHIVE" "${RW[@]}" --drain 2>>"$WORK/export.log"; }
check "export --drain returns once the targets have the whole archive" drained
names=$(ls "$ARCHIVE".rw-* | wc -l)
check "one position file per target beside the archive ($names)" [ "$names" = 2 ]
for f in "$ARCHIVE".rw-*; do
  check "$(basename "$f") is at the archive's end" at_end "$ARCHIVE" "${f##*.rw-}"
done
check_delivered vm "$ARCHIVE" grid-export
check_delivered prom "$ARCHIVE" grid-export
if [ "$FAILS" -gt 0 ]; then
  grep 'remote-write\|export' "$WORK/export.log" | tail -n 20 | sed 's/^/  export: /'
fi
finish
