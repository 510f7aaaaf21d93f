package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

func runTrust(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("OperatorTokens", func(t *testing.T) { testOperatorTokens(t, newStore(t)) })
	t.Run("EnrollmentTokens", func(t *testing.T) { testEnrollmentTokens(t, newStore(t)) })
	t.Run("EnrollmentTokenConcurrentUse", func(t *testing.T) { testEnrollConcurrent(t, newStore(t)) })
	t.Run("DeleteDevice", func(t *testing.T) { testDeleteDevice(t, newStore(t)) })
	t.Run("ReportReplay", func(t *testing.T) { testReportReplay(t, newStore(t)) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newStore(t)) })
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func auditCtx(action, target string) context.Context {
	return store.WithAudit(context.Background(), proto.AuditEntry{
		At: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), Actor: "alice", Action: action, Target: target, RemoteIP: "192.0.2.1",
	})
}

// actions returns the action/target of every audit entry, oldest first.
func actions(t *testing.T, s store.Store) []string {
	t.Helper()
	es, more, err := s.AuditEntries(context.Background(), "", 1000)
	if err != nil || more {
		t.Fatalf("AuditEntries: %v more=%v", err, more)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Target)
	}
	return out
}

func equalStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func testOperatorTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	bob := store.OperatorToken{Name: "bob", Role: proto.RoleViewer, Hash: hash("bob-token"), CreatedAt: at}
	alice := store.OperatorToken{Name: "alice", Role: proto.RoleAdmin, Hash: hash("alice-token"), CreatedAt: at}
	if err := s.CreateOperatorToken(auditCtx("token.create", "bob"), bob); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperatorToken(auditCtx("token.create", "alice"), alice); err != nil {
		t.Fatal(err)
	}
	for _, dup := range []store.OperatorToken{
		{Name: "bob", Role: proto.RoleAdmin, Hash: hash("other")},
		{Name: "carol", Role: proto.RoleAdmin, Hash: hash("bob-token")},
	} {
		if err := s.CreateOperatorToken(auditCtx("token.create", dup.Name), dup); !errors.Is(err, store.ErrExists) {
			t.Errorf("CreateOperatorToken(%s) duplicate = %v, want ErrExists", dup.Name, err)
		}
	}
	got, err := s.OperatorTokenByHash(ctx, hash("bob-token"))
	if err != nil || got.Name != "bob" || got.Role != proto.RoleViewer || !got.CreatedAt.Equal(at) {
		t.Errorf("OperatorTokenByHash = %+v, %v", got, err)
	}
	if _, err := s.OperatorTokenByHash(ctx, hash("nobody")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OperatorTokenByHash(unknown) = %v, want ErrNotFound", err)
	}
	list, err := s.OperatorTokens(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Errorf("OperatorTokens = %+v, %v; want alice, bob", list, err)
	}
	if err := s.DeleteOperatorToken(auditCtx("token.delete", "bob"), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OperatorTokenByHash(ctx, hash("bob-token")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted token still authenticates: %v", err)
	}
	if err := s.DeleteOperatorToken(auditCtx("token.delete", "bob"), "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteOperatorToken twice = %v, want ErrNotFound", err)
	}
	// The name is free again.
	if err := s.CreateOperatorToken(ctx, store.OperatorToken{Name: "bob", Role: proto.RoleAdmin, Hash: hash("bob-2")}); err != nil {
		t.Errorf("re-creating a deleted name: %v", err)
	}
	want := []string{"token.create bob", "token.create alice", "token.delete bob"}
	if got := actions(t, s); !equalStrings(got, want) {
		t.Errorf("audit = %q, want %q (failed changes and changes without an entry record nothing)", got, want)
	}
}

func testEnrollmentTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tok := store.EnrollmentToken{ID: "t1", Hash: hash("t1"), ExpiresAt: now.Add(time.Hour), MaxUses: 2, CreatedAt: now, CreatedBy: "alice"}
	if err := s.CreateEnrollmentToken(auditCtx("enrollment_token.create", "t1"), tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t1", Hash: hash("x"), ExpiresAt: now, MaxUses: 1}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate id = %v, want ErrExists", err)
	}
	got, err := s.EnrollmentTokenByHash(ctx, hash("t1"))
	if err != nil || got.ID != "t1" || got.MaxUses != 2 || got.Uses != 0 || got.CreatedBy != "alice" {
		t.Errorf("EnrollmentTokenByHash = %+v, %v", got, err)
	}
	if _, err := s.EnrollWithToken(ctx, hash("t1"), now, NewDevice("d1")); err != nil {
		t.Fatal(err)
	}
	// A device id collision fails the whole transaction: no use counted.
	if _, err := s.EnrollWithToken(ctx, hash("t1"), now, NewDevice("d1")); !errors.Is(err, store.ErrExists) {
		t.Errorf("enrolling an existing id = %v, want ErrExists", err)
	}
	if _, err := s.EnrollWithToken(ctx, hash("t1"), now, NewDevice("d2")); err != nil {
		t.Fatalf("second use of a 2-use token: %v", err)
	}
	if _, err := s.EnrollWithToken(ctx, hash("t1"), now, NewDevice("d3")); !errors.Is(err, store.ErrTokenUsedUp) {
		t.Errorf("third use = %v, want ErrTokenUsedUp", err)
	}
	if _, err := s.Device(ctx, "d3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused enrollment created the device: %v", err)
	}
	if got, _ := s.EnrollmentTokenByHash(ctx, hash("t1")); got.Uses != 2 {
		t.Errorf("uses = %d, want 2", got.Uses)
	}

	exp := store.EnrollmentToken{ID: "t2", Hash: hash("t2"), ExpiresAt: now, MaxUses: 5, CreatedAt: now.Add(-time.Hour)}
	if err := s.CreateEnrollmentToken(ctx, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnrollWithToken(ctx, hash("t2"), now, NewDevice("d4")); !errors.Is(err, store.ErrTokenExpired) {
		t.Errorf("expired token = %v, want ErrTokenExpired", err)
	}
	if _, err := s.EnrollWithToken(ctx, hash("nope"), now, NewDevice("d5")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token = %v, want ErrNotFound", err)
	}

	if err := s.RevokeEnrollmentToken(auditCtx("enrollment_token.revoke", "t2"), "t2"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeEnrollmentToken(ctx, "t2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking twice = %v, want ErrNotFound", err)
	}
	if _, err := s.EnrollWithToken(ctx, hash("t2"), now.Add(-2*time.Hour), NewDevice("d6")); !errors.Is(err, store.ErrTokenRevoked) {
		t.Errorf("revoked token = %v, want ErrTokenRevoked", err)
	}
	list, err := s.EnrollmentTokens(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "t1" {
		t.Errorf("EnrollmentTokens = %+v, %v; want only t1 (revoked ones are hidden)", list, err)
	}
	for _, id := range []string{"d4", "d5", "d6"} {
		if _, err := s.Device(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused enrollment created %s", id)
		}
	}
	want := []string{"enrollment_token.create t1", "enrollment_token.revoke t2"}
	if got := actions(t, s); !equalStrings(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

func testEnrollConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if err := s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t", Hash: hash("t"), ExpiresAt: now.Add(time.Hour), MaxUses: 3}); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.EnrollWithToken(ctx, hash("t"), now, NewDevice(fmt.Sprintf("c%02d", i)))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTokenUsedUp):
			t.Errorf("unexpected error %v", err)
		}
	}
	devs, _, err := s.Devices(ctx, "", 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 3 || len(devs) != 3 {
		t.Errorf("%d enrollments succeeded and %d devices exist, want 3 and 3", ok, len(devs))
	}
}

func testDeleteDevice(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := NewDevice("a1")
	mustCreate(t, s, d)
	mustCreate(t, s, NewDevice("a2"))
	if err := s.SetFCMToken(ctx, "a1", "fcm"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(auditCtx("device.delete", "a1"), "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Device(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Device after delete = %v, want ErrNotFound", err)
	}
	if _, err := s.DeviceBySecretHash(ctx, d.SecretHash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("secret index after delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Device(ctx, "a2"); err != nil {
		t.Errorf("the other device: %v", err)
	}
	if err := s.DeleteDevice(auditCtx("device.delete", "a1"), "a1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting twice = %v, want ErrNotFound", err)
	}
	// The id and secret may be enrolled again.
	mustCreate(t, s, d)
	if got := actions(t, s); !equalStrings(got, []string{"device.delete a1"}) {
		t.Errorf("audit = %q", got)
	}
}

func testReportReplay(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rep := func(nonce string, at time.Time) store.Report {
		return store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1, Nonce: nonce, ReportedAt: at}, ReceivedAt: at}
	}
	// Capability-1 reports (no nonce) are accepted until the first nonce.
	if _, err := s.SaveReport(ctx, "a1", rep("", time.Time{})); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		r    store.Report
		want error
	}{
		{"first nonce", rep("n1", t0), nil},
		{"same nonce", rep("n1", t0), store.ErrReplayedNonce},
		{"same nonce later time", rep("n1", t0.Add(time.Second)), store.ErrReplayedNonce},
		{"same time new nonce", rep("n2", t0), nil},
		{"first nonce again", rep("n1", t0), store.ErrReplayedNonce},
		{"newer", rep("n3", t0.Add(time.Minute)), nil},
		{"older", rep("n4", t0.Add(30*time.Second)), store.ErrStaleReport},
		{"no nonce after nonces", rep("", time.Time{}), store.ErrNonceRequired},
	}
	for _, st := range steps {
		_, err := s.SaveReport(ctx, "a1", st.r)
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Errorf("%s: SaveReport = %v, want %v", st.name, err, st.want)
		}
	}
	d, err := s.Device(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Report == nil || d.Report.Nonce != "n3" || !d.Report.ReportedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("last report = %+v, want n3 (refused reports change nothing)", d.Report)
	}

	// Two copies of one report sent at once: exactly one is accepted.
	mustCreate(t, s, NewDevice("a2"))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = s.SaveReport(ctx, "a2", rep("same", t0)) }()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrReplayedNonce) {
			t.Errorf("concurrent copy: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d copies of one report accepted, want 1", ok)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	if _, _, err := s.UpdateOverride(auditCtx("policy.update", "a1"), "a1", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	// Unchanged: nothing written, nothing audited.
	if _, changed, err := s.UpdateOverride(auditCtx("policy.update", "a1"), "a1", setCamera(true)); err != nil || changed {
		t.Fatal(err, changed)
	}
	// Unknown device: nothing audited.
	if _, _, err := s.UpdateOverride(auditCtx("policy.update", "zz"), "zz", setCamera(true)); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, _, err := s.UpdateOverride(auditCtx("policy.update", "a1"), "a1", setCamera(i%2 == 1)); err != nil {
			t.Fatal(err)
		}
	}
	all, more, err := s.AuditEntries(ctx, "", 100)
	if err != nil || more || len(all) != 5 {
		t.Fatalf("AuditEntries = %d entries, more=%v, %v; want 5", len(all), more, err)
	}
	e := all[0]
	if e.Actor != "alice" || e.Action != "policy.update" || e.Target != "a1" || e.RemoteIP != "192.0.2.1" || e.At.IsZero() || e.ID == "" {
		t.Errorf("entry = %+v", e)
	}
	// Pages of 2 walk the same entries in order.
	var paged []proto.AuditEntry
	after := ""
	for {
		page, more, err := s.AuditEntries(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(paged) != fmt.Sprint(all) {
		t.Errorf("paged = %v, want %v", paged, all)
	}
}
