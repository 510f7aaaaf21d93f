package bolt_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestCommandHook: every committed command change is announced once, with
// its state before, and a refused change announces nothing.
func TestCommandHook(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s, err := bolt.Open(filepath.Join(t.TempDir(), "doorbell.db"), bolt.WithCommandHook(func(cs ...store.CommandChange) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			got = append(got, string(c.From)+">"+string(c.Command.State))
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
	if len(got) != len(want) {
		t.Fatalf("hook saw %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hook saw %v, want %v", got, want)
		}
	}
}
