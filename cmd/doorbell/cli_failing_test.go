package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// TestDevicesFailingSince: `doorbell devices --failing-since` lists only
// the devices failing since before a time or a duration ago, the table
// and `devices show` say since when, and a bad value is the server's 400.
func TestDevicesFailingSince(t *testing.T) {
	f := startFleet(t, 3)
	id1 := f.devices[1].DeviceID
	auth := []string{"--server", f.url, "--token", f.admin}
	if _, _, err := cli(t, append([]string{"policy", "set", id1, "--camera-disabled=true"}, auth...)...); err != nil {
		t.Fatal(err)
	}
	if err := f.dev.Report(t.Context(), f.devices[1], proto.ComplianceReport{AppliedPolicyVersion: 2}); err != nil {
		t.Fatal(err)
	}
	ls := func(since string) []proto.DeviceStatus {
		t.Helper()
		out, _, err := cli(t, append([]string{"devices", "--failing-since", since, "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var devs []proto.DeviceStatus
		if err := json.Unmarshal([]byte(out), &devs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, out)
		}
		return devs
	}
	// It failed just now: not failing since before an hour ago, but since
	// before an hour from now.
	if devs := ls("1h"); len(devs) != 0 {
		t.Fatalf("--failing-since 1h: %+v, want none", devs)
	}
	devs := ls(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if len(devs) != 1 || devs[0].DeviceID != id1 || devs[0].NonCompliantSince == nil ||
		len(devs[0].Failing) != 1 || devs[0].Failing[0].FailingSince == nil || !devs[0].Failing[0].FailingSince.Equal(*devs[0].NonCompliantSince) {
		t.Fatalf("--failing-since in an hour: %+v, want %s with its times", devs, id1)
	}
	since := devs[0].NonCompliantSince.UTC().Format(time.RFC3339)

	out, _, err := cli(t, append([]string{"devices", "--failing-since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "FAILING SINCE") || !strings.HasPrefix(lines[1], id1) || !strings.Contains(lines[1], since) {
		t.Fatalf("table: want a header with FAILING SINCE and %s's row with %s:\n%s", id1, since, out)
	}
	out, _, err = cli(t, append([]string{"devices", "show", id1}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "failing since:") || strings.Count(out, since) < 2 || !strings.Contains(out, "SINCE") {
		t.Fatalf("show: want the device's and the setting's start %s:\n%s", since, out)
	}
	if _, _, err := cli(t, append([]string{"devices", "--failing-since", "yesterday"}, auth...)...); err == nil || !strings.Contains(err.Error(), "failingSince.lt") {
		t.Fatalf("--failing-since yesterday: %v, want the server's invalid_query", err)
	}
}

// TestServeEscalationInterval: a zero or negative --escalation-interval
// is refused before anything starts.
func TestServeEscalationInterval(t *testing.T) {
	for _, v := range []string{"0", "-1m"} {
		dir := t.TempDir()
		_, _, err := cli(t, "serve", "--data", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--escalation-interval", v)
		if err == nil || !strings.Contains(err.Error(), "--escalation-interval must be positive") {
			t.Errorf("--escalation-interval %s: %v, want refused", v, err)
		}
	}
}
