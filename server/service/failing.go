package service

import (
	"strconv"
	"strings"
	"time"
)

// maxFailingAgo bounds a ?failingSince.lt= duration: ten years back is
// already before any device enrolled.
const maxFailingAgo = 10 * 365 * 24 * time.Hour

// ParseFailingSince reads the value of GET /devices?failingSince.lt=: an
// RFC 3339 time, or a duration ago counted back from now, either Go's
// syntax ("36h", "90m") or whole days ("7d"). The error is an
// invalid_query one.
func ParseFailingSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > int(maxFailingAgo/(24*time.Hour)) {
			return time.Time{}, failingSinceError(s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxFailingAgo {
			return time.Time{}, failingSinceError(s)
		}
	}
	return now.Add(-d), nil
}

func failingSinceError(s string) error {
	return Errorf("invalid_query", "failingSince.lt %q: want an RFC 3339 time (2026-11-29T09:00:00Z) or a positive duration ago (72h, 90m, 7d) of at most ten years", s)
}
