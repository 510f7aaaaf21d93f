package api

import (
	"context"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// TestLastSeenAndOverdue: every authenticated device request counts as a
// sighting, kept in memory until a flush (no write per poll); a device not
// seen within two of the sync intervals it told is overdue, in its status
// and under GET /devices?seen=overdue. The clock is injected.
func TestLastSeenAndOverdue(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	quiet := h.enroll() // never tells an interval: 15 minutes assumed
	h.report(e, `{"appliedPolicyVersion":1,"cameraDisabled":false,"compliant":true,"syncIntervalSeconds":60}`)
	seenAt := h.clock.Now()
	s := h.status(e.DeviceID)
	if s.LastSeenAt == nil || !s.LastSeenAt.Equal(seenAt) || s.Overdue {
		t.Fatalf("after a report: lastSeenAt %v overdue %v, want %v and not overdue", s.LastSeenAt, s.Overdue, seenAt)
	}
	if s := h.status(quiet.DeviceID); s.LastSeenAt != nil || s.Overdue {
		t.Fatalf("never-seen device: lastSeenAt %v overdue %v", s.LastSeenAt, s.Overdue)
	}

	overdue := func() []string {
		t.Helper()
		var l proto.DeviceList
		h.must("GET", "/devices?seen=overdue", "", 200, &l)
		var ids []string
		for _, d := range l.Devices {
			if !d.Overdue {
				t.Errorf("listed as overdue but status says not: %+v", d)
			}
			ids = append(ids, d.DeviceID)
		}
		return ids
	}
	h.clock.Set(seenAt.Add(120 * time.Second)) // exactly two intervals: not yet
	if ids := overdue(); len(ids) != 0 {
		t.Fatalf("overdue at two intervals: %v", ids)
	}
	h.clock.Set(seenAt.Add(121 * time.Second))
	if ids := overdue(); len(ids) != 1 || ids[0] != e.DeviceID {
		t.Fatalf("overdue after two intervals = %v, want [%s]", ids, e.DeviceID)
	}

	// A poll is a sighting, in memory only until the flush.
	if r := h.do("GET", "/devices/"+e.DeviceID+"/policy", e.DeviceSecret, ""); r.status != 200 {
		t.Fatalf("policy: %d", r.status)
	}
	if s := h.status(e.DeviceID); s.Overdue || !s.LastSeenAt.Equal(h.clock.Now()) {
		t.Fatalf("after a poll: %+v", s)
	}
	stored, err := h.api.Service().Device(context.Background(), e.DeviceID)
	if err != nil || !stored.LastSeenAt.IsZero() {
		t.Fatalf("a poll wrote lastSeenAt %v before the flush (err %v)", stored.LastSeenAt, err)
	}
	if err := h.api.Service().FlushSeen(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, _ = h.api.Service().Device(context.Background(), e.DeviceID)
	if !stored.LastSeenAt.Equal(h.clock.Now()) || stored.SyncIntervalSeconds != 60 {
		t.Fatalf("after the flush: stored lastSeenAt %v interval %d, want %v and 60", stored.LastSeenAt, stored.SyncIntervalSeconds, h.clock.Now())
	}
	// An operator reading the device is not the device being seen.
	h.clock.Set(h.clock.Now().Add(time.Hour))
	h.status(e.DeviceID)
	h.do("GET", "/devices/"+e.DeviceID+"/policy", adminToken, "")
	if s := h.status(e.DeviceID); !s.Overdue {
		t.Fatalf("operator reads made the device seen: %+v", s)
	}
	if s := h.status(quiet.DeviceID); !s.Overdue {
		t.Fatalf("device silent for an hour with the default 15m interval not overdue: %+v", s)
	}

	for _, bad := range []struct{ path, token, body string }{
		{"/devices/" + e.DeviceID + "/report", e.DeviceSecret, `{"appliedPolicyVersion":1,"syncIntervalSeconds":-1}`},
		{"/devices/" + e.DeviceID + "/report", e.DeviceSecret, `{"appliedPolicyVersion":1,"syncIntervalSeconds":99999999}`},
		{"/enroll", enrollToken, `{"model":"m","syncIntervalSeconds":-5}`},
	} {
		if r := h.do("POST", bad.path, bad.token, bad.body); r.status != 400 || r.errCode(t) != "invalid_body" {
			t.Errorf("POST %s %s: %d %s, want 400 invalid_body", bad.path, bad.body, r.status, r.body)
		}
	}
	if r := h.do("GET", "/devices?seen=recently", adminToken, ""); r.status != 400 || r.errCode(t) != "invalid_query" {
		t.Errorf("seen=recently: %d %s", r.status, r.body)
	}
}
