#!/bin/sh
# scale.sh measures the scale-out path of docs/SCALING.md on one machine:
# a throwaway PostgreSQL, REPLICAS `doorbell serve --store postgres://...`
# on loopback, and a fleet of DEVICES simulated MQTT devices spread over
# the replicas by as many `doorbell sim --slice K/N` processes as the
# per-process open-file limit needs. It then
#   1. puts every device in one group and edits it once: the time until the
#      server reports every device COMPLIANT (scripts/fleetedit);
#   2. edit-one (p50/p99) and reports/s with a further SMALL devices, while
#      the fleet stays connected;
# and does the same on one bbolt `doorbell serve` (with at most
# BOLT_DEVICES, which must fit one process) for comparison. Progress goes
# to stderr; the figures, with the load average, to stdout.
#
#   scripts/scale.sh                                  # 300 devices over 3 replicas
#   DEVICES=30000 REPLICAS=3 scripts/scale.sh         # the issue-15 run (a quiet machine)
#
# Settings (environment): DEVICES (300), REPLICAS (3), SIM_PER_PROC (devices
# per simulator process, 8000), SMALL (edit-one/reports devices, 200),
# FSYNC (on: PostgreSQL as deployed; off: as in the test suite),
# BOLT_DEVICES (min(DEVICES, 15000); 0 skips bbolt), BIN (a doorbell binary;
# default: built into bin/doorbell), KEEP=1 keeps the work dir.
#
# Runs as root (PostgreSQL then runs as the postgres user, as pgtest does)
# or as any user that can run Debian's PostgreSQL binaries.
set -eu
DEVICES=${DEVICES:-300}
REPLICAS=${REPLICAS:-3}
SIM_PER_PROC=${SIM_PER_PROC:-8000}
SMALL=${SMALL:-200}
FSYNC=${FSYNC:-on}
if [ -z "${BIN:-}" ]; then
	BIN=bin/doorbell
	go build -o "$BIN" ./cmd/doorbell
fi
EDIT=${EDIT:-bin/fleetedit}
BOLT_DEVICES=${BOLT_DEVICES:-$([ "$DEVICES" -gt 15000 ] && echo 15000 || echo "$DEVICES")}
ADMIN=scale-admin
ENROLL=scale-enroll

log() { echo "scale: $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }
die() { echo "scale: $*" >&2; exit 1; }

go build -o "$EDIT" ./scripts/fleetedit
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (make deps installs the Debian package postgresql)"

# Open files: every simulated device holds an MQTT socket (and shares the
# simulator's HTTP connections); every replica holds its devices' sockets.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FILES=$(ulimit -n)
per_replica=$(( (DEVICES + REPLICAS - 1) / REPLICAS ))
[ $((per_replica + 1000)) -le "$FILES" ] || die "$per_replica devices per replica need more than the open-file limit $FILES: raise REPLICAS"
[ $((SIM_PER_PROC + 1000)) -le "$FILES" ] || SIM_PER_PROC=$((FILES - 1000))
SIMS=$(( (DEVICES + SIM_PER_PROC - 1) / SIM_PER_PROC ))
log "$DEVICES devices over $REPLICAS replicas and $SIMS simulator processes (open-file limit $FILES)"

work=$(mktemp -d /tmp/doorbell-scale-XXXXXX)
chmod 755 "$work" # PostgreSQL runs as another user below it
pids=""
pg_pid=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	# The postmaster (under runuser as root): a fast shutdown.
	if [ -n "$pg_pid" ] && [ -f "$work/pg/data/postmaster.pid" ]; then
		kill -INT "$(head -1 "$work/pg/data/postmaster.pid")" 2>/dev/null || true
		wait "$pg_pid" 2>/dev/null || true
	fi
	[ "${KEEP:-}" = 1 ] && echo "scale: work dir kept: $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
	while :; do
		p=$(shuf -i 20000-60000 -n 1)
		command -v ss >/dev/null || { echo "$p"; return; }
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# --- PostgreSQL: initdb in a temp dir, loopback only, a random port. Each
# replica uses a pool of 16 connections plus one for listening.
start_pg() {
	mkdir -p "$work/pg/sock"
	as=""
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$work/pg"
		as="runuser -u postgres --"
	fi
	$as "$PGBIN/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$work/pg/initdb.log" 2>&1 ||
		{ cat "$work/pg/initdb.log" >&2; die "initdb failed"; }
	PGPORT=$(free_port)
	maxconn=$((REPLICAS * 17 + 20))
	extra=""
	[ "$FSYNC" = off ] && extra="-c synchronous_commit=off -c full_page_writes=off"
	# shellcheck disable=SC2086
	$as "$PGBIN/postgres" -D "$work/pg/data" -p "$PGPORT" -c listen_addresses=127.0.0.1 \
		-c unix_socket_directories="$work/pg/sock" -c fsync="$FSYNC" $extra \
		-c max_connections="$maxconn" -c shared_buffers=256MB -c log_min_messages=warning \
		>"$work/pg/postgres.log" 2>&1 &
	pg_pid=$!
	i=0
	until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; do
		i=$((i + 1))
		[ $i -lt 300 ] && kill -0 "$pg_pid" 2>/dev/null || { cat "$work/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
		sleep 0.1
	done
	"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres doorbell
	STORE="postgres://postgres@127.0.0.1:$PGPORT/doorbell?sslmode=disable"
	log "PostgreSQL on 127.0.0.1:$PGPORT (fsync=$FSYNC, max_connections=$maxconn)"
}

# start_server NAME [--store URL]: one doorbell serve; sets URL and PID.
start_server() {
	name=$1; shift
	http=127.0.0.1:$(free_port)
	mqtt=127.0.0.1:$(free_port)
	"$BIN" serve --data "$work/$name" --http "$http" --mqtt "$mqtt" --tls off --enroll-rate -1 --device-rate -1 \
		--admin-token $ADMIN --enroll-token $ENROLL --log-format json "$@" >"$work/$name.out" 2>"$work/$name.log" &
	PID=$!
	pids="$pids $PID"
	i=0
	until grep -q '"msg":"serving"' "$work/$name.log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 600 ] && kill -0 "$PID" 2>/dev/null || { cat "$work/$name.log" >&2; die "$name did not start"; }
		sleep 0.1
	done
	URL=http://$http
}

# hold URLS N SERVERPID: N devices enrolled and connected by as many
# simulator processes as needed, which stay until killed ("idle" with a
# settle longer than the run); returns once every process is settling.
hold() {
	urls=$1; n=$2; spid=$3
	sims=$(( (n + SIM_PER_PROC - 1) / SIM_PER_PROC ))
	hold_pids=""
	k=1
	while [ $k -le "$sims" ]; do
		"$BIN" sim --server "$urls" --enroll-token $ENROLL --admin-token $ADMIN --devices "$n" --slice "$k/$sims" \
			--scenario idle --settle 100h --timeout 60m --server-pid "$spid" >"$work/hold-$k.out" 2>"$work/hold-$k.err" &
		hold_pids="$hold_pids $!"
		k=$((k + 1))
	done
	pids="$pids $hold_pids"
	for k in $(seq 1 "$sims"); do
		i=0
		until grep -aq "settling" "$work/hold-$k.err" 2>/dev/null; do
			i=$((i + 1))
			p=$(echo $hold_pids | cut -d' ' -f"$k")
			kill -0 "$p" 2>/dev/null || { tail -c 2000 "$work/hold-$k.err" >&2; die "simulator $k/$sims ended"; }
			[ $i -lt 36000 ] || die "simulator $k/$sims did not connect its devices within an hour"
			sleep 0.1
		done
	done
	log "$n devices enrolled and connected by $sims simulator process(es)"
}

unhold() {
	for p in $hold_pids; do kill "$p" 2>/dev/null || true; done
	for p in $hold_pids; do wait "$p" 2>/dev/null || true; done
}

# field NAME FILE: a number from sim's JSON line.
field() { grep -o "\"$1\":[0-9.]*" "$2" | head -1 | cut -d: -f2; }

# measure BACKEND URLS N SERVERPID
measure() {
	backend=$1; urls=$2; n=$3; spid=$4
	hold "$urls" "$n" "$spid"
	log "$backend: one group edit of all $n devices"
	first=${urls%%,*}
	alltime=$("$EDIT" --server "$first" --admin-token $ADMIN --devices "$n" | sed "s/^/$backend: /" | tee -a "$work/results.txt" |
		sed 's/.*all COMPLIANT after \([0-9.]*\)s.*/\1/')
	log "$backend: edit-one, $SMALL more devices, fleet connected"
	"$BIN" sim --server "$urls" --enroll-token $ENROLL --admin-token $ADMIN --devices "$SMALL" \
		--scenario edit-one --edits 100 --server-pid "$spid" --quiet --json >"$work/$backend-edit-one.json"
	log "$backend: reports for 10s, $SMALL more devices"
	"$BIN" sim --server "$urls" --enroll-token $ENROLL --admin-token $ADMIN --devices "$SMALL" \
		--scenario reports --duration 10s --server-pid "$spid" --quiet --json >"$work/$backend-reports.json"
	unhold
	printf '%-10s %8s %9s %22s %16.1f %16.1f %12.0f\n' "$backend" "$n" "$REPLICAS_OF" "$alltime" \
		"$(field p50Ms "$work/$backend-edit-one.json")" "$(field p99Ms "$work/$backend-edit-one.json")" \
		"$(field reportsPerSec "$work/$backend-reports.json")" >>"$work/table.txt"
}

printf '%-10s %8s %9s %22s %16s %16s %12s\n' backend devices replicas "group edit->all (s)" "edit-one p50 ms" "edit-one p99 ms" "reports/s" >"$work/table.txt"
start_load=$(cut -d' ' -f1-3 /proc/loadavg)

start_pg
urls=""
first_pid=""
for r in $(seq 1 "$REPLICAS"); do
	start_server "replica$r" --store "$STORE"
	urls="${urls:+$urls,}$URL"
	[ -n "$first_pid" ] || first_pid=$PID
done
log "replicas: $urls"
REPLICAS_OF=$REPLICAS
measure postgres "$urls" "$DEVICES" "$first_pid"
for p in $pids; do kill "$p" 2>/dev/null || true; done
for p in $pids; do wait "$p" 2>/dev/null || true; done
pids=""

if [ "$BOLT_DEVICES" -gt 0 ]; then
	start_server bolt
	REPLICAS_OF=1
	measure bbolt "$URL" "$BOLT_DEVICES" "$PID"
fi

echo "doorbell scale run: $(nproc) cores, load at start $start_load, at end $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL fsync=$FSYNC"
cat "$work/results.txt"
cat "$work/table.txt"
