#!/bin/sh
# bench.sh runs the performance scenarios of docs/PERFORMANCE.md at a size
# that fits in a few minutes (make bench): for each scenario a fresh
# `doorbell serve` on loopback, `doorbell sim` against it, then the broker
# reference benchmark (embedded broker vs Debian's mosquitto, fan-out time and
# idle memory per client). Every figure is kept as one JSON line in
# bin/bench.jsonl (each with the load average at its start); at the end
# scripts/benchtable prints them as a table beside their targets. Progress
# goes to stderr, one line per scenario.
#
#   DEVICES=2000 scripts/bench.sh          # the default size
#   DEVICES=10000 scripts/bench.sh         # the documented figures
set -eu
DEVICES=${DEVICES:-2000}
POLL_INTERVAL=${POLL_INTERVAL:-30s}
BIN=${BIN:-bin/doorbell}
HTTP=${HTTP:-127.0.0.1:18180}
MQTT=${MQTT:-127.0.0.1:18883}
FCM=${FCM:-127.0.0.1:18404}
OUT=${OUT:-bin/bench.jsonl}
PPROF=${PPROF:-127.0.0.1:18606}

work=$(mktemp -d)
server_pid=""
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_server() {
	rm -rf "$work/data" "$work/server.log"
	"$BIN" serve --data "$work/data" --http "$HTTP" --mqtt "$MQTT" --tls off --enroll-rate -1 --device-rate -1 --pprof "$PPROF" \
		--admin-token bench-admin --enroll-token bench-enroll \
		--fcm-project sim --fcm-endpoint "http://$FCM/v1" --log-format json 2>"$work/server.log" &
	server_pid=$!
	i=0
	until grep -q '"msg":"serving"' "$work/server.log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$server_pid" 2>/dev/null; then
			echo "server did not start:"; cat "$work/server.log"; exit 1
		fi
		sleep 0.1
	done
}

stop_server() {
	kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

# sim runs one scenario on a fresh server (so the idle figure starts from a
# server that served nothing else) and appends its JSON line to $OUT.
sim() {
	echo "bench: $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server
	"$BIN" sim --server "http://$HTTP" --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$DEVICES" --fcm-listen "$FCM" --server-pid "$server_pid" --server-pprof "$PPROF" \
		--quiet --json "$@" >>"$OUT"
	stop_server
}

: >"$OUT"
echo "# $(date -u +%FT%TZ), $DEVICES devices; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GB RAM", $2/1048576}' /proc/meminfo); load at start $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
sim --mode mqtt --scenario enroll
sim --mode mqtt --scenario edit-one
sim --mode mqtt --scenario edit-all
sim --mode mqtt --scenario idle
sim --mode mqtt --scenario reports
sim --mode fcm --scenario edit-one
sim --mode fcm --scenario edit-all
sim --mode poll --scenario edit-one --interval "$POLL_INTERVAL"
sim --mode poll --scenario edit-all --interval "$POLL_INTERVAL"
# At most 9,900 subscribers fit in one process's 20,000 open files.
fanout=$DEVICES; [ "$fanout" -gt 9900 ] && fanout=9900
echo "bench: broker fan-out and idle memory, embedded vs mosquitto, $fanout devices (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
DOORBELL_BENCH_JSON=$(realpath "$OUT") DOORBELL_BENCH_FANOUT=$fanout go test -run '^$' -bench BrokerFanout -benchtime 3x ./test/ |
	grep -E 'FAIL|_test.go' >&2 || true
echo "# finished $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
go run ./scripts/benchtable "$OUT"
