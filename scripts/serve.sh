# serve.sh is sourced by the measuring scripts (bench.sh, mochi-patched.sh):
# one way to start a throwaway `doorbell serve` on loopback and wait for it.
#
# serve_fresh BIN TLS [keep] [-- extra serve flags]: starts BIN serve with
# its data in $work/data (removed first unless "keep"), TLS off or auto,
# listening on $HTTP, $MQTT and the debug listener $PPROF, rate limits off,
# the bench tokens; sets server_pid and returns once the server logs
# "serving" (exits the script, with the log, if it does not start).
serve_fresh() {
	sf_bin=$1 sf_tls=$2
	shift 2
	if [ "${1:-}" = keep ]; then
		shift
	else
		rm -rf "$work/data"
	fi
	[ "${1:-}" = -- ] && shift
	rm -f "$work/server.log"
	"$sf_bin" serve --data "$work/data" --http "$HTTP" --mqtt "$MQTT" --tls "$sf_tls" --enroll-rate -1 --device-rate -1 \
		--pprof "$PPROF" --admin-token bench-admin --enroll-token bench-enroll --log-format json "$@" \
		>"$work/server.out" 2>"$work/server.log" &
	server_pid=$!
	sf_i=0
	until grep -q '"msg":"serving"' "$work/server.log" 2>/dev/null; do
		sf_i=$((sf_i + 1))
		if [ $sf_i -gt 300 ] || ! kill -0 "$server_pid" 2>/dev/null; then
			echo "server did not start:"; cat "$work/server.log"; exit 1
		fi
		sleep 0.1 # polling the server's log for its start line
	done
}
