package main

import (
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// TestHostileDeviceStringsEscaped: a device enrolled with terminal escape
// codes, newlines, tabs and bidi overrides in its model and OS version
// cannot forge a table row or reach the operator's terminal through the
// CLI (issue 17, finding 9).
func TestHostileDeviceStringsEscaped(t *testing.T) {
	d := servertest.Start(t, daemon.DaemonConfig{AdminToken: "cli-admin", EnrollToken: "cli-enroll"})
	url := "http://" + d.HTTPAddr()
	dev, err := agent.NewClient(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	const model = "Pixel\x1b]0;pwned\x07\x1b[2J\x1b[31m\nforged-device\tCOMPLIANT\t1\t1\tyes\t-\tPixel\r\u202egpj.exe\u009b31m\x7f"
	const osVersion = "14\n\x1b[1A\x1b[Kfake line"
	var resp proto.EnrollResponse
	testkit.EventuallyNil(t, 20*time.Second, "an enrollment", func() error {
		resp, err = dev.Enroll(t.Context(), d.EnrollToken(), proto.EnrollRequest{Model: model, OSVersion: osVersion, AgentVersion: "0.1.0\x1b[0m"})
		return err
	})
	var benign proto.EnrollResponse
	testkit.EventuallyNil(t, 20*time.Second, "an enrollment", func() error {
		benign, err = dev.Enroll(t.Context(), d.EnrollToken(), proto.EnrollRequest{Model: "Pixel 8", OSVersion: "14", AgentVersion: "0.1.0"})
		return err
	})
	auth := []string{"--server", url, "--token", d.AdminToken()}
	showLines := func(id string) int {
		out, _, err := cli(t, append([]string{"devices", "show", id}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		return len(strings.Split(strings.TrimRight(out, "\n"), "\n"))
	}
	for _, args := range [][]string{
		append([]string{"devices"}, auth...),
		append([]string{"devices", "show", resp.DeviceID}, auth...),
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, _, err := cli(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("output:\n%s", out)
			for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\u009b", "\x7f"} {
				if strings.Contains(out, bad) {
					t.Errorf("output contains the raw control character %q", bad)
				}
			}
			if strings.Contains(out, "\nforged-device") || strings.Contains(out, "\n\x1b") {
				t.Error("a device string started a line of its own")
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			want := 3 // header and two devices
			if args[1] == "show" {
				want = showLines(benign.DeviceID) // as many as for a benign device
			}
			if len(lines) != want {
				t.Errorf("%d output lines, want %d: a device string added lines", len(lines), want)
			}
			if !strings.Contains(out, `\x1b`) || !strings.Contains(out, "Pixel") {
				t.Errorf("the escaped model is not shown readably")
			}
		})
	}
}
