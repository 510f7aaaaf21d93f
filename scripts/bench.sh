#!/bin/sh
# bench.sh runs the performance scenarios of docs/PERFORMANCE.md at a size
# that fits in a few minutes (make bench): for each scenario a fresh
# `doorbell serve` on loopback, `doorbell sim` against it, then the broker
# reference benchmark (embedded broker vs Debian's mosquitto). Every figure
# is printed as one JSON line and kept in bin/bench.jsonl.
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

work=$(mktemp -d)
server_pid=""
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_server() {
	rm -rf "$work/data" "$work/server.log"
	"$BIN" serve --data "$work/data" --http "$HTTP" --mqtt "$MQTT" --tls off --enroll-rate -1 --device-rate -1 \
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

sim() {
	start_server
	"$BIN" sim --server "http://$HTTP" --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$DEVICES" --fcm-listen "$FCM" --server-pid "$server_pid" --json "$@" | tee -a "$OUT"
	stop_server
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg), $DEVICES devices" | tee -a "$OUT"
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
DOORBELL_BENCH_FANOUT=$fanout go test -run '^$' -bench BrokerFanout -benchtime 3x ./test/ | grep -E 'Benchmark|devices:|FAIL|_test.go' | tee -a "$OUT"
