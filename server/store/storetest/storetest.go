// Package storetest is the conformance suite every store.Store backend runs.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// Run runs the suite. newStore returns an empty store; reopen, when not nil,
// closes the given store and opens the same data again (durability checks).
func Run(t *testing.T, newStore func(t *testing.T) store.Store, reopen func(t *testing.T, s store.Store) store.Store) {
	t.Run("CreateAndGet", func(t *testing.T) { testCreateAndGet(t, newStore(t)) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, newStore(t)) })
	t.Run("DeviceAuth", func(t *testing.T) { testDeviceAuth(t, newStore(t)) })
	t.Run("EditBumpsVersion", func(t *testing.T) { testEditBumpsVersion(t, newStore(t)) })
	t.Run("DevicesInState", func(t *testing.T) { testDevicesInState(t, newStore(t)) })
	t.Run("DevicesFailingBefore", func(t *testing.T) { testDevicesFailingBefore(t, newStore(t)) })
	t.Run("ConcurrentUpdates", func(t *testing.T) { testConcurrentUpdates(t, newStore(t)) })
	t.Run("SaveReport", func(t *testing.T) { testSaveReport(t, newStore(t)) })
	t.Run("MarkSeen", func(t *testing.T) { testMarkSeen(t, newStore(t)) })
	t.Run("FCMToken", func(t *testing.T) { testFCMToken(t, newStore(t)) })
	runPolicy(t, newStore)
	runRevisions(t, newStore)
	runTrust(t, newStore)
	runCommands(t, newStore)
	runInventory(t, newStore)
	if reopen != nil {
		t.Run("Durable", func(t *testing.T) { testDurable(t, newStore(t), reopen) })
	}
}

// NewDevice returns a device record with id and a secret hash derived from it.
func NewDevice(id string) store.Device {
	h := sha256.Sum256([]byte("secret-" + id))
	return store.Device{
		ID:         id,
		SecretHash: h[:],
		Model:      "Pixel 8",
		OSVersion:  "14",
		EnrolledAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Policy:     proto.DevicePolicy{Version: 1},
	}
}

func mustCreate(t *testing.T, s store.Store, d store.Device) {
	t.Helper()
	if _, err := s.CreateDevice(context.Background(), d); err != nil {
		t.Fatalf("CreateDevice(%s): %v", d.ID, err)
	}
}

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := NewDevice("a1")
	mustCreate(t, s, d)
	got, err := s.Device(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != d.ID || got.Model != d.Model || !got.EnrolledAt.Equal(d.EnrolledAt) || !reflect.DeepEqual(got.Policy, d.Policy) || got.Report != nil {
		t.Fatalf("Device = %+v, want %+v", got, d)
	}
	if _, err := s.Device(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Device(unknown) err = %v, want ErrNotFound", err)
	}
	got, err = s.DeviceBySecretHash(ctx, d.SecretHash)
	if err != nil || got.ID != "a1" {
		t.Fatalf("DeviceBySecretHash = %v, %v", got.ID, err)
	}
	if _, err := s.DeviceBySecretHash(ctx, []byte("other")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeviceBySecretHash(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.CreateDevice(ctx, d); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateDevice(duplicate id) err = %v, want ErrExists", err)
	}
	other := NewDevice("a2")
	other.SecretHash = d.SecretHash
	if _, err := s.CreateDevice(ctx, other); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateDevice(duplicate secret) err = %v, want ErrExists", err)
	}
	if _, err := s.Device(ctx, "a2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused device was stored: %v", err)
	}
}

// testDeviceAuth checks that DeviceAuth follows every write that changes
// what it answers: the version of an edit and of a group edit, a report
// leaves it alone, and a deleted (revoked) device is gone at once.
func testDeviceAuth(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := NewDevice("k1")
	d.ClientCert = true
	mustCreate(t, s, d)
	mustCreate(t, s, NewDevice("k2"))
	want := store.DeviceAuth{ID: "k1", SecretHash: d.SecretHash, ClientCert: true, PolicyVersion: 1}
	check := func(step string) {
		t.Helper()
		got, err := s.DeviceAuth(ctx, "k1")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: DeviceAuth = %+v, %v; want %+v", step, got, err, want)
		}
	}
	check("enrolled")
	if got, err := s.DeviceAuth(ctx, "k2"); err != nil || got.ClientCert || got.ID != "k2" {
		t.Fatalf("DeviceAuth(k2) = %+v, %v; want no certificate", got, err)
	}
	if _, _, err := s.UpdateOverride(ctx, "k1", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	want.PolicyVersion = 2
	check("edited")
	if _, err := s.SaveReport(ctx, "k1", store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2,
		Settings: proto.Settings{CameraDisabled: true}}, ReceivedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	check("reported")
	if _, err := s.CreateGroup(ctx, store.Group{ID: "ga", Name: "auth", Layer: store.Layer{Values: proto.SettingValues{
		proto.SettingPasswordMinLength: json.RawMessage("6")}}, Members: []string{"k1"}}); err != nil {
		t.Fatal(err)
	}
	want.PolicyVersion = 3
	check("group edit")
	if p, err := s.DevicePolicy(ctx, "k1"); err != nil || p.Version != 3 || !p.CameraDisabled || p.PasswordMinLength == nil || *p.PasswordMinLength != 6 {
		t.Fatalf("DevicePolicy = %+v, %v; want version 3 with the edit and the group's setting", p, err)
	}
	if _, err := s.DevicePolicy(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DevicePolicy(unknown) err = %v, want ErrNotFound", err)
	}
	// The report is kept through the edits (a backend may keep it apart).
	if got, err := s.Device(ctx, "k1"); err != nil || got.Report == nil || got.Report.AppliedPolicyVersion != 2 || got.Policy.Version != 3 {
		t.Fatalf("Device after edits = %+v, %v; want the report of version 2 kept", got, err)
	}
	if err := s.DeleteDevice(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.DeviceAuth(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeviceAuth(deleted) = %+v, %v; want ErrNotFound", got, err)
	}
	if _, err := s.DeviceAuth(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeviceAuth(unknown) err = %v, want ErrNotFound", err)
	}
}

func testDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		mustCreate(t, s, NewDevice(fmt.Sprintf("d%02d", i)))
	}
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		devs, more, err := s.Devices(ctx, after, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			all = append(all, d.ID)
		}
		if !more {
			break
		}
		after = devs[len(devs)-1].ID
	}
	if len(all) != 25 {
		t.Fatalf("paged %d devices, want 25: %v", len(all), all)
	}
	for i, id := range all {
		if want := fmt.Sprintf("d%02d", i); id != want {
			t.Fatalf("device %d = %s, want %s (id order)", i, id, want)
		}
	}
	odd := func(d store.Device) bool { return d.ID[2]%2 == 1 }
	devs, more, err := s.Devices(ctx, "d10", 3, odd)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 3 || devs[0].ID != "d11" || devs[2].ID != "d15" || !more {
		t.Fatalf("filtered page = %v more=%v, want d11 d13 d15 more=true", ids(devs), more)
	}
	devs, more, err = s.Devices(ctx, "d21", 3, odd)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].ID != "d23" || more {
		t.Fatalf("last filtered page = %v more=%v, want d23 more=false", ids(devs), more)
	}
}

func ids(devs []store.Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.ID)
	}
	return out
}

// setCamera sets the device's own cameraDisabled, keeping the rest of its
// layer.
func setCamera(v bool) func(store.Layer) store.Layer {
	return func(l store.Layer) store.Layer {
		out := store.Layer{Values: proto.SettingValues{}, Modes: l.Modes}
		for k, x := range l.Values {
			out.Values[k] = x
		}
		out.Values[proto.SettingCameraDisabled] = json.RawMessage(strconv.FormatBool(v))
		return out
	}
}

func testEditBumpsVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("p1"))
	c, changed, err := s.UpdateOverride(ctx, "p1", setCamera(true))
	d := c.Device
	if err != nil || !changed || d.Policy.Version != 2 || !d.Policy.CameraDisabled {
		t.Fatalf("UpdateOverride = %+v changed=%v err=%v, want version 2 camera disabled", d.Policy, changed, err)
	}
	c, changed, err = s.UpdateOverride(ctx, "p1", setCamera(true))
	d = c.Device
	if err != nil || changed || d.Policy.Version != 2 {
		t.Fatalf("no-op UpdateOverride = %+v changed=%v err=%v, want version 2 unchanged", d.Policy, changed, err)
	}
	got, _ := s.Device(ctx, "p1")
	if got.Policy.Version != 2 || !got.Policy.CameraDisabled {
		t.Fatalf("stored policy = %+v", got.Policy)
	}
	if got.PolicyChangedAt.IsZero() || !got.PolicyChangedAt.Equal(d.PolicyChangedAt) {
		t.Fatalf("PolicyChangedAt = %v after an edit (returned %v), want the time of the bump, stored", got.PolicyChangedAt, d.PolicyChangedAt)
	}
	if _, _, err := s.UpdateOverride(ctx, "nope", setCamera(true)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateOverride(unknown) err = %v", err)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.CreateDevice(ctx, NewDevice("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Device.Rev != 1 {
		t.Fatalf("a new device's Rev = %d, want 1", c.Device.Rev)
	}
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	revs := map[int64]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Every call flips the value, so each one is a real change.
			c, _, err := s.UpdateOverride(ctx, "c1", func(l store.Layer) store.Layer {
				on := string(l.Values[proto.SettingCameraDisabled]) == "true"
				return setCamera(!on)(l)
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			revs[c.Device.Rev]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	got, _ := s.Device(ctx, "c1")
	if got.Policy.Version != 1+n {
		t.Fatalf("version after %d concurrent edits = %d, want %d", n, got.Policy.Version, 1+n)
	}
	// Each write has its own revision, in commit order: 2 to n+1, once each.
	if got.Rev != 1+n {
		t.Errorf("Rev after %d concurrent edits = %d, want %d", n, got.Rev, 1+n)
	}
	for rev := int64(2); rev <= 1+n; rev++ {
		if revs[rev] != 1 {
			t.Errorf("Rev %d returned by %d writes, want 1", rev, revs[rev])
		}
	}
}

func testSaveReport(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("r1"))
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	r := store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1, Compliant: true}, ReceivedAt: at}
	if _, err := s.SaveReport(ctx, "r1", r); err != nil {
		t.Fatal(err)
	}
	ahead := r
	ahead.AppliedPolicyVersion = 2
	if _, err := s.SaveReport(ctx, "r1", ahead); !errors.Is(err, store.ErrVersionAhead) {
		t.Fatalf("SaveReport(version ahead) err = %v, want ErrVersionAhead", err)
	}
	got, _ := s.Device(ctx, "r1")
	if got.Report == nil || got.Report.AppliedPolicyVersion != 1 || !got.Report.ReceivedAt.Equal(at) {
		t.Fatalf("stored report = %+v, want version 1 at %v", got.Report, at)
	}
	if _, err := s.SaveReport(ctx, "nope", r); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SaveReport(unknown) err = %v", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("rc%02d", i)
		mustCreate(t, s, NewDevice(id))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.SaveReport(ctx, id, r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 20; i++ {
		got, _ := s.Device(ctx, fmt.Sprintf("rc%02d", i))
		if got.Report == nil {
			t.Fatalf("concurrent report %d lost", i)
		}
	}
}

func testFCMToken(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("f1"))
	if err := s.SetFCMToken(ctx, "f1", "tok-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFCMToken(ctx, "f1", "tok-old"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Device(ctx, "f1"); got.FCMToken != "tok-1" {
		t.Fatalf("a stale delete removed the current token: %q", got.FCMToken)
	}
	if err := s.DeleteFCMToken(ctx, "f1", "tok-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Device(ctx, "f1"); got.FCMToken != "" {
		t.Fatalf("token after delete = %q", got.FCMToken)
	}
	if err := s.SetFCMToken(ctx, "nope", "t"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetFCMToken(unknown) err = %v", err)
	}
	if err := s.DeleteFCMToken(ctx, "nope", "t"); err != nil {
		t.Fatalf("DeleteFCMToken(unknown) err = %v, want nil", err)
	}
}

func testDurable(t *testing.T, s store.Store, reopen func(*testing.T, store.Store) store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("x1"))
	if _, _, err := s.UpdateOverride(ctx, "x1", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	r := store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2, Settings: proto.Settings{CameraDisabled: true}}}
	if _, err := s.SaveReport(ctx, "x1", r); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got, err := s.Device(ctx, "x1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Policy.Version != 2 || !got.Policy.CameraDisabled || got.Report == nil || got.Report.AppliedPolicyVersion != 2 {
		t.Fatalf("after reopen: policy %+v report %+v", got.Policy, got.Report)
	}
}
