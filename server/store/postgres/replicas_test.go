package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/postgres/pgtest"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestTwoStoresOneDatabase runs what bbolt's single writer used to order
// for free on two stores (two replicas) at once: reports from every
// device, group edits whose members overlap and device edits. Nothing may
// deadlock or fail, every device must end with the last group edit's value,
// and the sharded counters must add up to a recount of the devices.
func TestTwoStoresOneDatabase(t *testing.T) {
	url := migrated(t)
	a, b := open(t, url), open(t, url)
	ctx := context.Background()
	const n = 60
	var ids []string
	for i := range n {
		id := fmt.Sprintf("d%03d", i)
		ids = append(ids, id)
		if _, err := a.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CreateGroup(ctx, store.Group{ID: "low", Name: "low", Priority: 1, Members: ids[:40]}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateGroup(ctx, store.Group{ID: "high", Name: "high", Priority: 2, Members: ids[20:]}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	// Group edits from both stores, alternating values so each is a change.
	for gi, g := range []string{"low", "high"} {
		s := []*postgres.Store{a, b}[gi]
		wg.Go(func() {
			for i := range 6 {
				_, _, err := s.UpdateGroup(ctx, g, func(gr store.Group) (store.Group, error) {
					gr.Values = proto.SettingValues{"passwordMinLength": []byte(fmt.Sprint(4 + i))}
					return gr, nil
				})
				if err != nil {
					errs <- fmt.Errorf("group %s edit %d: %w", g, i, err)
				}
			}
		})
	}
	// Reports from every device through both stores, at the version each
	// last saw, and device edits on some.
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i, id := range ids {
		s := []*postgres.Store{a, b}[i%2]
		wg.Go(func() {
			for k := range 5 {
				d, err := s.Device(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				r := store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: d.Policy.Version, Settings: d.Policy.Settings, Nonce: fmt.Sprintf("%s-%d", id, k), ReportedAt: at.Add(time.Duration(k) * time.Second)}, ReceivedAt: at}
				if _, err := s.SaveReport(ctx, id, r); err != nil {
					errs <- fmt.Errorf("report %s: %w", id, err)
				}
				if i%10 == 0 {
					if _, _, err := s.UpdateOverride(ctx, id, flipCamera); err != nil {
						errs <- fmt.Errorf("edit %s: %w", id, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts := map[proto.ComplianceState]int64{}
	drift := map[string]int64{}
	for _, id := range ids {
		d, err := b.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// Both groups' last edit set 4+5; "high" wins where they overlap.
		const want = 9
		if d.Policy.PasswordMinLength == nil || *d.Policy.PasswordMinLength != want {
			t.Errorf("%s: passwordMinLength %v, want %d", id, d.Policy.PasswordMinLength, want)
		}
		st, failing := policy.Derive(d)
		counts[st]++
		for _, f := range failing {
			drift[f.Setting]++
		}
		hist, err := a.History(ctx, id)
		if err != nil || len(hist) == 0 || hist[0].Cause != proto.CauseEnroll {
			t.Errorf("%s: history %v, %v", id, hist, err)
		}
	}
	sum, err := a.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range proto.States {
		if sum.Counts[st] != counts[st] {
			t.Errorf("summary counts %v, recount %v", sum.Counts, counts)
			break
		}
	}
	for _, ds := range sum.DriftingSettings {
		if drift[ds.Setting] != ds.Devices {
			t.Errorf("drift %s = %d, recount %d", ds.Setting, ds.Devices, drift[ds.Setting])
		}
		delete(drift, ds.Setting)
	}
	if len(drift) > 0 {
		t.Errorf("drift missing from the summary: %v", drift)
	}
}

func TestAuditRetention(t *testing.T) {
	s := open(t, migrated(t), postgres.WithAuditRetention(3))
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("a1")); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		actx := store.WithAudit(ctx, proto.AuditEntry{Actor: "admin", Action: "policy.update", Target: "a1"})
		if _, _, err := s.UpdateOverride(actx, "a1", setCamera(i%2 == 0)); err != nil {
			t.Fatal(err)
		}
	}
	es, more, err := s.AuditEntries(ctx, "", 100)
	if err != nil || more {
		t.Fatal(err, more)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.ID)
	}
	if fmt.Sprint(got) != "[3 4 5]" {
		t.Errorf("kept entries %v, want the newest 3: [3 4 5]", got)
	}
}

// TestMigrateTogether starts several stores on one empty database at once:
// the advisory lock lets exactly one apply the schema.
func TestMigrateTogether(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// setCamera sets the device's own cameraDisabled.
func setCamera(v bool) func(store.Layer) store.Layer {
	return func(l store.Layer) store.Layer {
		vals := proto.SettingValues{}
		for k, x := range l.Values {
			vals[k] = x
		}
		vals["cameraDisabled"] = []byte(fmt.Sprint(v))
		l.Values = vals
		return l
	}
}

// flipCamera turns the device's own cameraDisabled around.
func flipCamera(l store.Layer) store.Layer {
	return setCamera(string(l.Values["cameraDisabled"]) != "true")(l)
}
