package netx

import "syscall"

// fdReserve is the part of the file limit kept for everything but client
// connections: the database, logs, TLS files, backups, outgoing
// connections (FCM, webhook, PostgreSQL).
const fdReserve = 256

// FDBudget splits the process's file descriptor limit (RLIMIT_NOFILE,
// soft, which Go raises to the hard limit at start) between the two
// listeners, so that their connection caps act before the process runs out
// of descriptors: after a reserve (256, or a quarter of a small limit),
// three quarters for MQTT (every always-connected device holds one) and a
// quarter for HTTP (devices hold one only while they sync). ok is false
// when the limit cannot be read or is unlimited.
func FDBudget() (mqtt, http int, ok bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) || rl.Cur > 1<<30 {
		return 0, 0, false
	}
	mqtt, http = budget(int(rl.Cur))
	return mqtt, http, true
}

// budget is FDBudget for a limit of n descriptors; neither share is below
// 16.
func budget(n int) (mqtt, http int) {
	rest := n - min(fdReserve, n/4)
	return max(16, rest*3/4), max(16, rest/4)
}

// Cap is a listener's connection cap for a configured value, given the
// listener's share of the file limit (FDBudget; shareOK false when
// unknown): 0 means def, or the share when smaller; a value above the
// share is lowered to it (lowered true: say so, the operator asked for
// more); a negative value means no cap and is returned as is.
func Cap(configured, def, share int, shareOK bool) (limit int, lowered bool) {
	switch {
	case configured < 0:
		return configured, false
	case configured == 0 && shareOK:
		return min(def, share), false
	case configured == 0:
		return def, false
	case shareOK && configured > share:
		return share, true
	default:
		return configured, false
	}
}
