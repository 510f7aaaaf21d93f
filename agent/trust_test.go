package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

func TestReportsCarryNonceTimeAndBinaryHash(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	r := h.sync(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	srv.setPolicy(r.DeviceID, proto.Settings{CameraDisabled: true})
	if r = h.sync(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	raw := srv.rawReports(r.DeviceID)
	if len(raw) != 2 {
		t.Fatalf("got %d reports, want 2", len(raw))
	}
	want, err := ExecutableSHA256()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(os.Args[0])
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
		t.Fatalf("ExecutableSHA256 = %s, not the hash of the test binary", want)
	}
	for i, rep := range raw {
		if len(rep.Nonce) != 32 {
			t.Errorf("report %d nonce %q, want 32 hex digits", i, rep.Nonce)
		}
		if !rep.ReportedAt.Equal(h.clock.Now()) {
			t.Errorf("report %d reportedAt %v, want the agent clock's %v", i, rep.ReportedAt, h.clock.Now())
		}
		if rep.AgentSHA256 != want {
			t.Errorf("report %d agentSha256 %q, want %q", i, rep.AgentSHA256, want)
		}
	}
	if raw[0].Nonce == raw[1].Nonce {
		t.Errorf("two reports share the nonce %q", raw[0].Nonce)
	}
}

func TestReplayRefusalRecovers(t *testing.T) {
	for _, code := range []string{CodeReplayedNonce, CodeStaleReport} {
		t.Run(code, func(t *testing.T) {
			srv := newFakeServer(t)
			h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.AgentSHA256 = "abc" })
			r := h.sync(t)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			policiesBefore := srv.count("policy")
			srv.setPolicy(r.DeviceID, proto.Settings{CameraDisabled: true})
			srv.refuseReports(code, 1)
			r = h.sync(t)
			if r.Err != nil {
				t.Fatalf("sync after a %s refusal = %v, want recovered", code, r.Err)
			}
			if n := srv.count("report"); n != 3 {
				t.Errorf("%d report calls, want 3 (first sync, refused, fresh)", n)
			}
			// Re-read the policy unconditionally (no If-None-Match) after the refusal.
			calls := srv.callsOf("policy")[policiesBefore:]
			if len(calls) != 2 || calls[1].IfNoneMatch != "" {
				t.Errorf("policy calls after the refusal = %+v, want two, the second without If-None-Match", calls)
			}
			raw := srv.rawReports(r.DeviceID)
			if len(raw) != 2 || raw[1].Nonce == raw[0].Nonce || raw[1].AgentSHA256 != "abc" {
				t.Errorf("accepted reports = %+v, want two with distinct nonces and the configured hash", raw)
			}
		})
	}
}

func TestReplayRefusalRetriedOnlyOnce(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	r := h.sync(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	srv.setPolicy(r.DeviceID, proto.Settings{CameraDisabled: true})
	// The report and its retry are both refused.
	srv.refuseReports(CodeStaleReport, 2)
	r = h.sync(t)
	if !IsReplayRefusal(r.Err) {
		t.Fatalf("sync = %v, want the second replay refusal", r.Err)
	}
	if n := srv.count("report"); n != 3 {
		t.Errorf("%d report calls, want 3 (no endless retry)", n)
	}
}
