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
#   ONLY="mqtt:edit-all tls:idle tls:restart fanout" scripts/bench.sh   # some rows only
set -eu
DEVICES=${DEVICES:-2000}
POLL_INTERVAL=${POLL_INTERVAL:-30s}
BIN=${BIN:-bin/doorbell}
HTTP=${HTTP:-127.0.0.1:18180}
MQTT=${MQTT:-127.0.0.1:18883}
FCM=${FCM:-127.0.0.1:18404}
OUT=${OUT:-bin/bench.jsonl}
PPROF=${PPROF:-127.0.0.1:18606}
# Over TLS every device holds an MQTT and an HTTPS connection, in the
# simulator and in the server: at most ~9,000 fit in 20,000 open files per
# process (more needs several simulator processes, --slice).
TLS_DEVICES=${TLS_DEVICES:-$DEVICES}
[ "$TLS_DEVICES" -gt 9000 ] && TLS_DEVICES=9000

work=$(mktemp -d)
server_pid=""
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# start_server [tls] [keep]: a fresh server (plain, or TLS with its own CA
# in $work/data/tls); "keep" restarts on the data of the previous one.
start_server() {
	tls=off
	[ "${1:-}" = tls ] && tls=auto
	[ "${2:-}" = keep ] || rm -rf "$work/data"
	rm -f "$work/server.log"
	"$BIN" serve --data "$work/data" --http "$HTTP" --mqtt "$MQTT" --tls $tls --enroll-rate -1 --device-rate -1 --pprof "$PPROF" \
		--admin-token bench-admin --enroll-token bench-enroll \
		--fcm-project sim --fcm-endpoint "http://$FCM/v1" --log-format json >"$work/server.out" 2>"$work/server.log" &
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

# want reports whether the row named $1 (mode:scenario, tls:scenario or
# fanout) is to run: all of them unless $ONLY lists some.
want() {
	[ -z "${ONLY:-}" ] && return 0
	case " $ONLY " in *" $1 "*) return 0 ;; esac
	return 1
}

# sim runs one scenario on a fresh server (so the idle figure starts from a
# server that served nothing else) and appends its JSON line to $OUT.
sim() {
	want "$2:$4" || return 0
	echo "bench: $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server
	"$BIN" sim --server "http://$HTTP" --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$DEVICES" --fcm-listen "$FCM" --server-pid "$server_pid" --server-pprof "$PPROF" \
		--quiet --json "$@" >>"$OUT"
	stop_server
}

# tls_sim is sim over TLS: every simulated device enrolls with its own key
# and certificate and holds its own HTTPS and MQTT/TLS connections.
tls_sim() {
	want "tls:$2" || return 0
	echo "bench: TLS $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server tls
	"$BIN" sim --server "https://$HTTP" --ca-file "$work/data/tls/ca.pem" --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$TLS_DEVICES" --server-pid "$server_pid" --server-pprof "$PPROF" --mode mqtt \
		--quiet --json "$@" >>"$OUT"
	stop_server
}

# restart_sim: the reconnect storm over TLS. The simulator stops the server
# once the fleet is connected; this restarts it on the same data and the
# simulator measures until every device is back.
restart_sim() {
	want tls:restart || return 0
	echo "bench: TLS restart storm (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server tls
	"$BIN" sim --server "https://$HTTP" --ca-file "$work/data/tls/ca.pem" --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$TLS_DEVICES" --server-pid "$server_pid" --mode mqtt --scenario restart \
		--quiet --json >>"$OUT" &
	sim_pid=$!
	while kill -0 "$server_pid" 2>/dev/null && kill -0 "$sim_pid" 2>/dev/null; do
		sleep 0.2 # waiting for the simulator to stop the server
	done
	if ! kill -0 "$server_pid" 2>/dev/null; then
		wait "$server_pid" 2>/dev/null || true
		start_server tls keep
	fi
	wait "$sim_pid" || echo "bench: the restart scenario failed" >&2
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
tls_sim --scenario edit-one
tls_sim --scenario edit-all
tls_sim --scenario idle
tls_sim --scenario reports
restart_sim
# At most 9,900 subscribers fit in one process's 20,000 open files.
fanout=$DEVICES; [ "$fanout" -gt 9900 ] && fanout=9900
if want fanout; then
	echo "bench: broker fan-out and idle memory, embedded vs mosquitto, $fanout devices (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	DOORBELL_BENCH_JSON=$(realpath "$OUT") DOORBELL_BENCH_FANOUT=$fanout go test -run '^$' -bench BrokerFanout -benchtime 3x ./test/ |
		grep -E 'FAIL|_test.go' >&2 || true
fi
echo "# finished $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
go run ./scripts/benchtable "$OUT"
