package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/postgres/pgtest"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestMigrate copies a bbolt data dir with a bit of everything into
// PostgreSQL and reads it all back the same from there. The copy streams
// in parts of two items, so nearly every kind of record crosses a part
// boundary.
func TestMigrate(t *testing.T) {
	defer func(n int) { migratePartSize = n }(migratePartSize)
	migratePartSize = 2
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	dir := t.TempDir()
	src, err := bolt.Open(filepath.Join(dir, "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := src.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
	}
	audited := store.WithAudit(ctx, proto.AuditEntry{Actor: "admin", Action: "policy.update", Target: "a"})
	if _, _, err := src.UpdateOverride(audited, "a", func(l store.Layer) store.Layer {
		return store.Layer{Values: proto.SettingValues{"cameraDisabled": []byte("true")}}
	}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if _, err := src.SaveReport(ctx, "b", store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1, Nonce: "n1", ReportedAt: at}, ReceivedAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.CreateGroup(ctx, store.Group{ID: "g", Name: "kiosks", Layer: store.Layer{Values: proto.SettingValues{"passwordMinLength": []byte("8")}}, Members: []string{"b", "c"}}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("op"))
	if err := src.CreateOperatorToken(ctx, store.OperatorToken{Name: "ci", Role: proto.RoleViewer, Hash: h[:], CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	eh := sha256.Sum256([]byte("enroll"))
	if err := src.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t1", Hash: eh[:], ExpiresAt: at.Add(time.Hour), MaxUses: 5, Uses: 2}); err != nil {
		t.Fatal(err)
	}
	if err := src.RevokeEnrollmentToken(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte("the-admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := pki.Open(pki.Config{Dir: filepath.Join(dir, "tls"), Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	reboot := storetest.NewCommand("b", proto.CommandReboot, 0)
	lock := storetest.NewCommand("b", proto.CommandLock, 1)
	if _, err := src.CreateCommands(ctx, []proto.Command{reboot, lock}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.SetCommandResult(ctx, "b", reboot.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, reboot.CreatedAt.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.MarkEscalated(ctx, "b", "notify", at); err != nil {
		t.Fatal(err)
	}
	inv := storetest.FixtureInventory("kiosk-b", "debian", "12", "6.1", proto.FormatDeb, "openssl=3.0.11-1")
	invUp := storetest.Full(inv)
	invUp.CollectedAt = at.Add(-time.Minute)
	if _, err := src.SaveInventory(ctx, "b", invUp, at); err != nil {
		t.Fatal(err)
	}
	wantInv, err := src.Inventory(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSum, _ := src.Summary(ctx)
	src.Close()

	var out, errb bytes.Buffer
	if err := run(ctx, []string{"migrate", "--data-dir", dir, "--to", url}, &out, &errb); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "copied 3 devices, 1 groups") {
		t.Errorf("output %q", out.String())
	}
	dst, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, d := range want.Devices {
		got, err := dst.Device(ctx, d.ID)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("device %s = %+v, %v; want %+v", d.ID, got, err, d)
		}
		hist, err := dst.History(ctx, d.ID)
		if err != nil || !reflect.DeepEqual(hist, stripIDs(want.History[d.ID])) {
			t.Errorf("history of %s = %+v, %v; want %+v", d.ID, hist, err, want.History[d.ID])
		}
	}
	if g, err := dst.Group(ctx, "g"); err != nil || !reflect.DeepEqual(g, want.Groups[0]) {
		t.Errorf("group = %+v, %v; want %+v", g, err, want.Groups[0])
	}
	if sum, err := dst.Summary(ctx); err != nil || !reflect.DeepEqual(sum, wantSum) {
		t.Errorf("summary = %+v, %v; want %+v", sum, err, wantSum)
	}
	if tok, err := dst.EnrollmentTokenByHash(ctx, eh[:]); err != nil || !tok.Revoked || tok.Uses != 2 {
		t.Errorf("enrollment token = %+v, %v; want revoked with 2 uses", tok, err)
	}
	if op, err := dst.OperatorTokenByHash(ctx, h[:]); err != nil || op.Name != "ci" {
		t.Errorf("operator token = %+v, %v", op, err)
	}
	if es, _, err := dst.AuditEntries(ctx, "", 10); err != nil || !reflect.DeepEqual(es, want.Audit) {
		t.Errorf("audit = %+v, %v; want %+v", es, err, want.Audit)
	}
	if len(want.Commands) != 2 || len(want.Revisions) != 2 {
		t.Fatalf("source dump has %d commands, %d revision lists; want 2 and 2", len(want.Commands), len(want.Revisions))
	}
	cmds, _, err := dst.DeviceCommands(ctx, "b", "", 10, "")
	if err != nil || len(cmds) != 2 || !reflect.DeepEqual(cmds[0], want.Commands[1]) || !reflect.DeepEqual(cmds[1], want.Commands[0]) {
		t.Errorf("commands of b = %+v, %v; want %+v newest first", cmds, err, want.Commands)
	}
	if open, err := dst.DeliverCommands(ctx, "b", lock.CreatedAt.Add(time.Second), 10); err != nil || len(open) != 1 || open[0].CommandID != lock.CommandID {
		t.Errorf("delivered after the copy = %+v, %v; want only the unfinished lock", open, err)
	}
	for _, lr := range want.Revisions {
		got, err := dst.Revisions(ctx, lr.Kind, lr.ID)
		slices.Reverse(got)
		if err != nil || !reflect.DeepEqual(got, lr.Revisions) {
			t.Errorf("revisions of %s %s = %+v, %v; want %+v", lr.Kind, lr.ID, got, err, lr.Revisions)
		}
	}
	if len(want.Inventories) != 1 {
		t.Fatalf("source dump has %d inventories, want 1", len(want.Inventories))
	}
	if got, err := dst.Inventory(ctx, "b"); err != nil || !reflect.DeepEqual(got, wantInv) {
		t.Errorf("inventory of b = %+v, %v; want %+v", got, err, wantInv)
	}
	if got, err := dst.PackageVersions(ctx, "openssl"); err != nil || !reflect.DeepEqual(got, []proto.PackageVersionCount{{Format: proto.FormatDeb, Version: "3.0.11-1", Devices: 1}}) {
		t.Errorf("openssl versions after the copy = %+v, %v", got, err)
	}
	if ids, _, err := dst.FindDevices(ctx, store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Equal: "kiosk-b"}}}, "", 10); err != nil || fmt.Sprint(ids) != "[b]" {
		t.Errorf("hostname=kiosk-b after the copy = %v, %v", ids, err)
	}
	if first, err := dst.MarkEscalated(ctx, "b", "notify", at); err != nil || first {
		t.Errorf("escalation after the copy: first=%v err=%v; want already fired", first, err)
	}
	// The next audited change continues the ids.
	if _, _, err := dst.UpdateOverride(audited, "a", func(l store.Layer) store.Layer { return store.Layer{} }); err != nil {
		t.Fatal(err)
	}
	if es, _, _ := dst.AuditEntries(ctx, want.Audit[len(want.Audit)-1].ID, 10); len(es) != 1 || es[0].ID != "2" {
		t.Errorf("audit after the copy = %+v, want id 2", es)
	}
	if tok, created, err := dst.SharedToken(ctx, "admin"); err != nil || created || tok != "the-admin-token" {
		t.Errorf("shared admin token = %q created=%v err=%v", tok, created, err)
	}
	shared, err := pki.Open(pki.Config{Files: dst.PKIFiles(), Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if shared.Pin() != auth.Pin() || !bytes.Equal(shared.Certificate().Certificate[0], auth.Certificate().Certificate[0]) {
		t.Error("the database serves another CA or certificate than the data dir")
	}

	// A second copy into the same database is refused.
	if err := run(ctx, []string{"migrate", "--data-dir", dir, "--to", url}, &out, &errb); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("second migrate = %v, want a refusal", err)
	}
}

func stripIDs(ts []proto.Transition) []proto.Transition {
	out := []proto.Transition{}
	for _, t := range ts {
		t.DeviceID = ""
		out = append(out, t)
	}
	return out
}
