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
# Over TLS an idle device holds only its MQTT connection (an agent closes its
# HTTPS connection when its sync ends), but when the whole fleet syncs at once
# (edit-all, restart) the simulator holds an HTTPS connection per device too:
# those rows run in TLS_PROCS simulator processes (--slice), as many as the
# open-file limit needs (2 sockets per device), started together and combined
# by scripts/benchtable.
TLS_DEVICES=${TLS_DEVICES:-$DEVICES}
files=$(ulimit -n); [ "$files" = unlimited ] || [ "$files" -gt 20000 ] && files=20000
TLS_PROCS=${TLS_PROCS:-$(( (2 * TLS_DEVICES + files - 401) / (files - 400) ))}

. "$(dirname "$0")/serve.sh"
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
	keep=""
	[ "${2:-}" = keep ] && keep=keep
	# shellcheck disable=SC2086 # $keep is one word or none
	serve_fresh "$BIN" $tls $keep -- --fcm-project sim --fcm-endpoint "http://$FCM/v1"
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
# and certificate and makes its own HTTPS and MQTT/TLS connections.
tls_sim() {
	want "tls:$2" || return 0
	echo "bench: TLS $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server tls
	"$BIN" sim --server "https://$HTTP" --ca-file "$work/data/tls/ca.pem" --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$TLS_DEVICES" --server-pid "$server_pid" --server-pprof "$PPROF" --mode mqtt \
		--quiet --json "$@" >>"$OUT"
	stop_server
}

# slices_start starts TLS_PROCS simulator processes over TLS, each with its
# --slice of the fleet, and once every one is enrolled and connected starts
# their measured part at one moment (--ready-file, then SIGUSR1).
slices_start() {
	sim_pids=""
	k=1
	while [ $k -le "$TLS_PROCS" ]; do
		rm -f "$work/ready.$k"
		"$BIN" sim --server "https://$HTTP" --ca-file "$work/data/tls/ca.pem" --enroll-token bench-enroll --admin-token bench-admin \
			--devices "$TLS_DEVICES" --slice "$k/$TLS_PROCS" --ready-file "$work/ready.$k" --server-pid "$server_pid" --mode mqtt \
			--quiet --json "$@" >"$work/out.$k" &
		sim_pids="$sim_pids $!"
		k=$((k + 1))
	done
	k=1
	while [ $k -le "$TLS_PROCS" ]; do
		until [ -e "$work/ready.$k" ]; do
			for p in $sim_pids; do
				kill -0 "$p" 2>/dev/null || { echo "bench: a simulator process failed before the start" >&2; slices_wait; return 1; }
			done
			sleep 0.2
		done
		k=$((k + 1))
	done
	for p in $sim_pids; do kill -USR1 "$p"; done
}

# slices_wait waits for the simulator processes and appends their lines.
slices_wait() {
	for p in $sim_pids; do wait "$p" || echo "bench: a simulator process failed" >&2; done
	k=1
	while [ $k -le "$TLS_PROCS" ]; do cat "$work/out.$k" >>"$OUT"; k=$((k + 1)); done
}

# tls_slices is tls_sim for a scenario where the whole fleet syncs at once,
# in TLS_PROCS processes.
tls_slices() {
	want "tls:$2" || return 0
	echo "bench: TLS $* in $TLS_PROCS simulator processes (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server tls
	slices_start "$@" && slices_wait
	stop_server
}

# restart_sim: the reconnect storm over TLS. The (first) simulator stops the
# server once the fleet is connected; this restarts it on the same data and
# the simulators measure until every device is back.
restart_sim() {
	want tls:restart || return 0
	echo "bench: TLS restart storm in $TLS_PROCS simulator processes (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	start_server tls
	slices_start --scenario restart || { stop_server; return 0; }
	alive=1
	while kill -0 "$server_pid" 2>/dev/null && [ $alive = 1 ]; do
		alive=0
		for p in $sim_pids; do kill -0 "$p" 2>/dev/null && alive=1; done
		sleep 0.2 # waiting for the simulator to stop the server
	done
	if ! kill -0 "$server_pid" 2>/dev/null; then
		wait "$server_pid" 2>/dev/null || true
		start_server tls keep
	fi
	slices_wait
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
tls_slices --scenario edit-all
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
