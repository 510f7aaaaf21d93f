package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestCommandHook: every committed command change is announced once, after
// the commit, with its state before; a refused change announces nothing;
// DeleteDevice announces the cancellations it made in its transaction.
func TestCommandHook(t *testing.T) {
	var mu sync.Mutex
	var got []string
	url := migrated(t)
	s := open(t, url, postgres.WithCommandHook(func(cs ...store.CommandChange) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			got = append(got, string(c.From)+">"+string(c.Command.State))
		}
	}))
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("a1")); err != nil {
		t.Fatal(err)
	}
	reboot := storetest.NewCommand("a1", proto.CommandReboot, 0)
	lock := storetest.NewCommand("a1", proto.CommandLock, 0)
	if _, err := s.CreateCommands(ctx, []proto.Command{reboot, lock}); err != nil {
		t.Fatal(err)
	}
	at := reboot.CreatedAt.Add(time.Second)
	if _, err := s.DeliverCommands(ctx, "a1", at, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetCommandResult(ctx, "a1", reboot.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetCommandResult(ctx, "a1", reboot.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, at); err == nil {
		t.Fatal("second result accepted")
	}
	if err := s.DeleteDevice(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	want := []string{">PENDING", ">PENDING", "PENDING>DELIVERED", "PENDING>DELIVERED", "DELIVERED>ACKNOWLEDGED", "DELIVERED>CANCELLED"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("hook saw %v, want %v", got, want)
	}
	// The cancellation is durable: another replica reads it.
	other := open(t, url)
	c, err := other.Command(ctx, lock.CommandID)
	if err != nil || c.State != proto.CommandCancelled {
		t.Fatalf("lock command after delete, from another replica = %v %v; want CANCELLED", c.State, err)
	}
}

// TestCommandsAcrossReplicas: two replicas sending results for the same
// command at once: exactly one wins, the other gets ErrCommandState.
func TestCommandsAcrossReplicas(t *testing.T) {
	url := migrated(t)
	a, b := open(t, url), open(t, url)
	ctx := context.Background()
	if _, err := a.CreateDevice(ctx, storetest.NewDevice("a1")); err != nil {
		t.Fatal(err)
	}
	reboot := storetest.NewCommand("a1", proto.CommandReboot, 0)
	if _, err := a.CreateCommands(ctx, []proto.Command{reboot}); err != nil {
		t.Fatal(err)
	}
	at := reboot.CreatedAt.Add(time.Second)
	if _, err := b.DeliverCommands(ctx, "a1", at, 10); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for _, s := range []*postgres.Store{a, b} {
		go func() {
			_, err := s.SetCommandResult(ctx, "a1", reboot.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, at)
			errs <- err
		}()
	}
	var ok, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrCommandState):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("concurrent results: %d accepted, %d refused; want 1 and 1", ok, refused)
	}
}

// TestHealthDiskFull: a write the server refuses for a full disk (SQLSTATE
// 53100, raised here by a trigger standing in for the full disk) is
// ErrStorageFull, Health reports it until a write succeeds again.
func TestHealthDiskFull(t *testing.T) {
	url := migrated(t)
	s := open(t, url)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
		CREATE TRIGGER full_disk BEFORE INSERT ON devices FOR EACH ROW EXECUTE FUNCTION full_disk()`); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("Health before any failure = %v", err)
	}
	_, err := s.CreateDevice(ctx, storetest.NewDevice("a1"))
	if !errors.Is(err, store.ErrStorageFull) {
		t.Fatalf("CreateDevice on a full disk = %v; want ErrStorageFull", err)
	}
	if err := s.Health(); !errors.Is(err, store.ErrStorageFull) {
		t.Fatalf("Health after the failure = %v; want ErrStorageFull", err)
	}
	if _, err := s.Device(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device after the refused write: %v; want ErrNotFound", err)
	}
	if _, err := s.Pool().Exec(ctx, "DROP TRIGGER full_disk ON devices"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("a1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("Health after a successful write = %v", err)
	}
}
