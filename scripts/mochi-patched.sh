#!/bin/sh
# mochi-patched.sh measures the upstream proposal in
# docs/upstream/mochi-idle-memory.patch: it copies the mochi module this
# repository uses (the exact version in go.mod) out of the Go module cache,
# applies the patch to the copy, builds one doorbell binary against the
# patched copy (through a go.work in a temporary directory: the repository's
# go.mod and go.sum are not touched) and one against mochi as go.mod has it,
# then runs the simulator's idle scenario on a fresh server with each, back
# to back, with the same command, and keeps a goroutine and a heap profile of
# each server while its devices are connected. See docs/PERFORMANCE.md,
# "Lifting the floor: a measured upstream patch".
#
#   scripts/mochi-patched.sh                       # 2,000 devices, plain MQTT and MQTT over TLS
#   DEVICES=500 MODES=mqtt scripts/mochi-patched.sh
#   MOCHI_TESTS=1 scripts/mochi-patched.sh         # also run mochi's own tests on the patched copy
#   BUILD_ONLY=1 scripts/mochi-patched.sh          # only build bin/doorbell-mochi-{upstream,patched}
#   NO_BUILD=1 VARIANTS="upstream patched other" scripts/mochi-patched.sh
#                                  # measure bin/doorbell-mochi-<variant> as they are (no copy, no build)
#
# GCS (default 3) is how many forced collections (the debug listener's
# /debug/memory) the script asks of each server once its devices are
# connected, before the simulator's reading: the runtime shrinks a
# goroutine's stack by half at most once per collection, so a server that has
# just connected its fleet still holds the stacks the connections grew, and a
# long-running one does not. GCS=0 leaves the reading to the simulator alone
# (one collection). Two figures per run: the simulator's (connected minus
# right after enrollment) and, read by this script from the same server,
# connected minus once the simulator has left and the server's goroutines
# are steady (over TLS the first is low: it is net of the enrollment's HTTPS
# connections, which the server still held at its first reading). Results:
# one JSON line per run in $OUTDIR/idle.jsonl, the profiles beside it, and
# two tables on stdout.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
DEVICES=${DEVICES:-2000}
MODES=${MODES:-mqtt tls}
GCS=${GCS:-3}
SETTLE=${SETTLE:-30s} # in seconds, "<n>s"; at least 15s
OUTDIR=${OUTDIR:-bin/mochi-patched}
HTTP=${HTTP:-127.0.0.1:18280}
MQTT=${MQTT:-127.0.0.1:18983}
PPROF=${PPROF:-127.0.0.1:18706}
PATCH=$repo/docs/upstream/mochi-idle-memory.patch
mkdir -p "$OUTDIR" bin
OUTDIR=$(cd "$OUTDIR" && pwd)

. "$(dirname "$0")/serve.sh"
work=$(mktemp -d)
server_pid=""
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	chmod -R u+w "$work" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

VARIANTS=${VARIANTS:-upstream patched}
if [ -z "${NO_BUILD:-}" ]; then
	# The module as go.mod has it, copied out of the module cache (never edited
	# there), and the patch applied to the copy.
	mod=github.com/mochi-mqtt/server/v2
	ver=$(GOWORK=off go list -m -f '{{.Version}}' $mod)
	dir=$(GOWORK=off go mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$dir" ] || { echo "mochi-patched: cannot find $mod@$ver in the module cache" >&2; exit 1; }
	cp -R "$dir" "$work/mochi"
	chmod -R u+w "$work/mochi"
	(cd "$work/mochi" && git apply "$PATCH")
	echo "mochi-patched: $mod $ver copied to $work/mochi and patched" >&2

	if [ -n "${MOCHI_TESTS:-}" ]; then
		echo "mochi-patched: mochi's own tests on the patched copy (go test ./...)" >&2
		start=$(date +%s)
		# -p 1: one package at a time (mochi's listeners tests listen on the
		# fixed port :22222, and once failed to bind it here when run beside
		# the other packages on a busy machine).
		(cd "$work/mochi" && GOWORK=off go test -count=1 -p 1 ./...) >&2
		echo "mochi-patched: mochi's tests passed in $(($(date +%s) - start)) s" >&2
	fi

	cat >"$work/go.work" <<EOF
go $(sed -n 's/^go //p' go.mod)

use $repo

replace $mod $ver => $work/mochi
EOF
	GOWORK=off go build -o bin/doorbell-mochi-upstream ./cmd/doorbell
	GOWORK=$work/go.work go build -o bin/doorbell-mochi-patched ./cmd/doorbell
	echo "mochi-patched: built bin/doorbell-mochi-upstream (mochi $ver) and bin/doorbell-mochi-patched (mochi $ver + patch)" >&2
fi
[ -n "${BUILD_ONLY:-}" ] && exit 0

mqtt_port=${MQTT##*:}

# established prints how many MQTT connections are established (state 01 in
# /proc/net/tcp, local port $mqtt_port).
established() {
	awk -v p="$(printf ':%04X' "$mqtt_port")" '$4 == "01" && substr($2, length($2) - 4) == p' /proc/net/tcp | wc -l
}

# reading prints the server's VmRSS, heap in use, stacks in use (bytes) and
# goroutines, after the full collection /debug/memory makes.
reading() {
	m=$(curl -fsS "http://$PPROF/debug/memory")
	rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$server_pid/status")
	echo "$rss $(echo "$m" | sed -n 's/.*"heapInuse":\([0-9]*\).*/\1/p') $(echo "$m" | sed -n 's/.*"stackInuse":\([0-9]*\).*/\1/p') $(echo "$m" | sed -n 's/.*"goroutines":\([0-9]*\).*/\1/p')"
}

# run VARIANT MODE: a fresh server, the idle scenario, profiles while idle.
run() {
	variant=$1 mode=$2
	bin=bin/doorbell-mochi-$variant
	tls=off scheme=http ca=""
	if [ "$mode" = tls ]; then
		tls=auto scheme=https
	fi
	serve_fresh "$bin" $tls
	[ "$mode" = tls ] && ca="--ca-file $work/data/tls/ca.pem"
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	echo "mochi-patched: $variant $mode idle, $DEVICES devices (load $load)" >&2
	# shellcheck disable=SC2086 # $ca is two words or none
	"$bin" sim --server "$scheme://$HTTP" $ca --enroll-token bench-enroll --admin-token bench-admin \
		--devices "$DEVICES" --mode mqtt --scenario idle --settle "$SETTLE" \
		--server-pid "$server_pid" --server-pprof "$PPROF" --quiet --json >"$work/sim.json" &
	sim_pid=$!
	# Every device connected: as many established MQTT sockets (state 01 in
	# /proc/net/tcp, local port $mqtt_port) as devices.
	until [ "$(established)" -ge "$DEVICES" ]; do
		kill -0 "$sim_pid" 2>/dev/null || break
		sleep 0.5
	done
	# Read near the end of the simulator's settle, as it does: by then the
	# server has let go of the HTTPS connections the devices enrolled over
	# (fasthttp keeps an idle worker goroutine 10 s).
	sleep $((${SETTLE%s} - 8))
	n=0
	while [ $n -lt "$GCS" ]; do
		curl -fsS "http://$PPROF/debug/memory" >/dev/null
		n=$((n + 1))
		sleep 1
	done
	p=$OUTDIR/$variant-$mode
	curl -fsS "http://$PPROF/debug/pprof/goroutine?debug=1" >"$p.goroutine.txt"
	curl -fsS "http://$PPROF/debug/pprof/heap?gc=1" >"$p.heap.pb.gz"
	idle=$(reading)
	wait "$sim_pid"
	sim_pid=""
	# The same server once the simulator has gone: its devices' MQTT
	# sessions (clean sessions) and HTTPS connections closed and the
	# server's goroutine count steady, everything else (enrolled devices,
	# caches) as while idle. Connected minus this, per device, is a second
	# idle figure that, unlike the simulator's, does not depend on when the
	# server released the enrollment's HTTPS connections.
	prev=-1 steady=0 i=0
	while [ $steady -lt 3 ] && [ $i -lt 90 ]; do
		sleep 1
		g=$(curl -fsS "http://$PPROF/debug/memory" | sed -n 's/.*"goroutines":\([0-9]*\).*/\1/p')
		if [ "$g" = "$prev" ] && [ "$(established)" -eq 0 ]; then steady=$((steady + 1)); else steady=0; fi
		prev=$g i=$((i + 1))
	done
	gone=$(reading)
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
	extra=$(echo "$idle $gone" | awk -v n="$DEVICES" '{printf "\"connectedMinusGone\":{\"rss\":%.0f,\"heap\":%.0f,\"stack\":%.0f,\"goroutines\":%.3f},", ($1-$5)/n, ($2-$6)/n, ($3-$7)/n, ($4-$8)/n}')
	sed "s/^{/{\"variant\":\"$variant\",\"gcs\":$GCS,$extra/" "$work/sim.json" >>"$OUTDIR/idle.jsonl"
	go tool pprof -sample_index=inuse_space -top -nodecount=25 "$p.heap.pb.gz" >"$p.heap.txt" 2>/dev/null || true
}

: >"$OUTDIR/idle.jsonl"
for mode in $MODES; do
	for variant in $VARIANTS; do
		run "$variant" "$mode"
	done
done

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
kb() { field "$1" | awk '{print $1/1024}'; }
# table TITLE RSS HEAP STACK GOROUTINES: one row per run, those fields per device.
table() {
	echo "$1"
	printf '%-9s %-5s %12s %12s %12s %11s  %s\n' variant mode "RSS KB/dev" "heap KB/dev" "stack KB/dev" "goroutines" "load at start"
	while read -r line; do
		v=$(echo "$line" | sed -n 's/.*"variant":"\([a-z]*\)".*/\1/p')
		m=mqtt
		echo "$line" | grep -q '"tls":true' && m=tls
		l=$(echo "$line" | sed -n 's/.*"loadAvg":"\([^"]*\)".*/\1/p')
		printf '%-9s %-5s %12.1f %12.1f %12.1f %11.2f  %s\n' "$v" "$m" \
			"$(echo "$line" | kb "$2")" "$(echo "$line" | kb "$3")" "$(echo "$line" | kb "$4")" \
			"$(echo "$line" | field "$5")" "$l"
	done <"$OUTDIR/idle.jsonl"
}
table "doorbell sim's idle figure (connected minus after enrollment):" \
	serverBytesPerDevice serverHeapPerDevice serverStackPerDevice serverGoroutinesPerDevice
table "the same server, connected minus after the simulator left:" rss heap stack goroutines
echo "profiles: $OUTDIR/{upstream,patched}-{mqtt,tls}.{goroutine.txt,heap.pb.gz,heap.txt}"
