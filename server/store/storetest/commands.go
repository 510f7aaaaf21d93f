package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

func runCommands(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CommandCreate", func(t *testing.T) { testCommandCreate(t, newStore(t)) })
	t.Run("CommandIdempotency", func(t *testing.T) { testCommandIdempotency(t, newStore(t)) })
	t.Run("CommandExclusive", func(t *testing.T) { testCommandExclusive(t, newStore(t)) })
	t.Run("CommandGroupCreate", func(t *testing.T) { testCommandGroupCreate(t, newStore(t)) })
	t.Run("CommandList", func(t *testing.T) { testCommandList(t, newStore(t)) })
	t.Run("CommandDeliverAndResult", func(t *testing.T) { testCommandDeliverAndResult(t, newStore(t)) })
	t.Run("CommandResultRules", func(t *testing.T) { testCommandResultRules(t, newStore(t)) })
	t.Run("CommandCancel", func(t *testing.T) { testCommandCancel(t, newStore(t)) })
	t.Run("CommandExpiry", func(t *testing.T) { testCommandExpiry(t, newStore(t)) })
	t.Run("CommandWipeCancelsOthers", func(t *testing.T) { testCommandWipe(t, newStore(t)) })
	t.Run("CommandDeviceDelete", func(t *testing.T) { testCommandDeviceDelete(t, newStore(t)) })
	t.Run("CommandAudit", func(t *testing.T) { testCommandAudit(t, newStore(t)) })
}

var cmdT0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

var cmdSeq int

// NewCommand returns a PENDING command of typ for deviceID created at
// cmdT0 (plus n seconds) expiring ten minutes later, with a fresh id.
func NewCommand(deviceID string, typ proto.CommandType, n int) proto.Command {
	cmdSeq++
	at := cmdT0.Add(time.Duration(n) * time.Second)
	return proto.Command{
		CommandID: fmt.Sprintf("cmd-%s-%d-%d", deviceID, n, cmdSeq),
		DeviceID:  deviceID,
		Type:      typ,
		State:     proto.CommandPending,
		CreatedAt: at,
		ExpiresAt: at.Add(10 * time.Minute),
		CreatedBy: "alice",
	}
}

func mustCreateCommands(t *testing.T, s store.Store, cmds ...proto.Command) []proto.Command {
	t.Helper()
	out, err := s.CreateCommands(context.Background(), cmds)
	if err != nil {
		t.Fatalf("CreateCommands: %v", err)
	}
	if len(out) != len(cmds) {
		t.Fatalf("CreateCommands returned %d commands for %d", len(out), len(cmds))
	}
	return out
}

func commandState(t *testing.T, s store.Store, id string) proto.CommandState {
	t.Helper()
	c, err := s.Command(context.Background(), id)
	if err != nil {
		t.Fatalf("Command(%s): %v", id, err)
	}
	return c.State
}

func wantState(t *testing.T, s store.Store, id string, want proto.CommandState) {
	t.Helper()
	if got := commandState(t, s, id); got != want {
		t.Fatalf("command %s is %s, want %s", id, got, want)
	}
}

func testCommandCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	c := NewCommand("a1", proto.CommandRunScript, 0)
	c.Params = map[string]string{"script": "cleanup.sh"}
	out := mustCreateCommands(t, s, c)
	if out[0].CommandID != c.CommandID || out[0].State != proto.CommandPending {
		t.Fatalf("created %+v", out[0])
	}
	got, err := s.Command(ctx, c.CommandID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceID != "a1" || got.Type != proto.CommandRunScript || got.Params["script"] != "cleanup.sh" ||
		!got.CreatedAt.Equal(c.CreatedAt) || !got.ExpiresAt.Equal(c.ExpiresAt) || got.CreatedBy != "alice" ||
		!got.Timestamps[proto.CommandPending].Equal(c.CreatedAt) {
		t.Fatalf("Command = %+v, want %+v", got, c)
	}
	if _, err := s.Command(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Command(unknown) = %v, want ErrNotFound", err)
	}
	// A taken id and an unknown device are refused and store nothing.
	dup := NewCommand("a1", proto.CommandReboot, 1)
	dup.CommandID = c.CommandID
	if _, err := s.CreateCommands(ctx, []proto.Command{dup}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateCommands(taken id) = %v, want ErrExists", err)
	}
	ghost := NewCommand("ghost", proto.CommandReboot, 1)
	if _, err := s.CreateCommands(ctx, []proto.Command{ghost}); !errors.Is(err, store.ErrUnknownDevice) {
		t.Fatalf("CreateCommands(unknown device) = %v, want ErrUnknownDevice", err)
	}
	if _, err := s.Command(ctx, ghost.CommandID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused command was stored: %v", err)
	}
	if got := commandState(t, s, c.CommandID); got != proto.CommandPending {
		t.Fatalf("the first command changed to %s", got)
	}
}

func testCommandIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	mustCreate(t, s, NewDevice("a2"))
	first := NewCommand("a1", proto.CommandLock, 0)
	first.IdempotencyKey = "k1"
	mustCreateCommands(t, s, first)
	again := NewCommand("a1", proto.CommandLock, 5)
	again.IdempotencyKey = "k1"
	out := mustCreateCommands(t, s, again)
	if out[0].CommandID != first.CommandID {
		t.Fatalf("same key returned %s, want the first command %s", out[0].CommandID, first.CommandID)
	}
	if _, err := s.Command(ctx, again.CommandID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the repeated request stored a second command: %v", err)
	}
	// The key is per device: another device's command with it is new.
	other := NewCommand("a2", proto.CommandLock, 5)
	other.IdempotencyKey = "k1"
	if out := mustCreateCommands(t, s, other); out[0].CommandID != other.CommandID {
		t.Fatalf("a key on another device returned %s", out[0].CommandID)
	}
	// Still the first command once it is final.
	if _, err := s.CancelCommand(ctx, first.CommandID, cmdT0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	again2 := NewCommand("a1", proto.CommandLock, 9)
	again2.IdempotencyKey = "k1"
	if out := mustCreateCommands(t, s, again2); out[0].CommandID != first.CommandID || out[0].State != proto.CommandCancelled {
		t.Fatalf("same key after cancel returned %+v, want the first (cancelled) command", out[0])
	}
}

func testCommandExclusive(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	lock := mustCreateCommands(t, s, NewCommand("a1", proto.CommandLock, 0))[0]
	for _, state := range []string{"pending", "delivered"} {
		second := NewCommand("a1", proto.CommandLock, 1)
		if _, err := s.CreateCommands(ctx, []proto.Command{second}); !errors.Is(err, store.ErrCommandConflict) {
			t.Fatalf("second lock while the first is %s = %v, want ErrCommandConflict", state, err)
		}
		if _, err := s.Command(ctx, second.CommandID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused lock was stored: %v", err)
		}
		if _, err := s.DeliverCommands(ctx, "a1", cmdT0.Add(time.Second), 100); err != nil {
			t.Fatal(err)
		}
	}
	// Reboots are not exclusive.
	mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 1), NewCommand("a1", proto.CommandReboot, 2))
	// Once the lock is final, a new one is accepted.
	if _, err := s.SetCommandResult(ctx, "a1", lock.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, cmdT0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustCreateCommands(t, s, NewCommand("a1", proto.CommandLock, 3))
}

func testCommandGroupCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"g1", "g2", "g3"} {
		mustCreate(t, s, NewDevice(id))
	}
	// g2 already has a lock: the whole group lock is refused.
	mustCreateCommands(t, s, NewCommand("g2", proto.CommandLock, 0))
	batch := []proto.Command{NewCommand("g1", proto.CommandLock, 1), NewCommand("g2", proto.CommandLock, 1), NewCommand("g3", proto.CommandLock, 1)}
	for i := range batch {
		batch[i].GroupID = "grp"
	}
	if _, err := s.CreateCommands(ctx, batch); !errors.Is(err, store.ErrCommandConflict) {
		t.Fatalf("group lock with a conflicting member = %v, want ErrCommandConflict", err)
	}
	if _, err := s.Command(ctx, batch[0].CommandID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused group create stored the first member's command: %v", err)
	}
	// An unknown member refuses the whole batch too.
	rb := []proto.Command{NewCommand("g1", proto.CommandReboot, 2), NewCommand("gone", proto.CommandReboot, 2)}
	if _, err := s.CreateCommands(ctx, rb); !errors.Is(err, store.ErrUnknownDevice) {
		t.Fatalf("group create with an unknown member = %v, want ErrUnknownDevice", err)
	}
	if _, err := s.Command(ctx, rb[0].CommandID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused group create stored a command: %v", err)
	}
	ok := []proto.Command{NewCommand("g1", proto.CommandReboot, 3), NewCommand("g2", proto.CommandReboot, 3), NewCommand("g3", proto.CommandReboot, 3)}
	out := mustCreateCommands(t, s, ok...)
	for i, c := range out {
		if c.CommandID != ok[i].CommandID || c.DeviceID != ok[i].DeviceID {
			t.Fatalf("group create result %d = %s on %s, want %s on %s", i, c.CommandID, c.DeviceID, ok[i].CommandID, ok[i].DeviceID)
		}
		wantState(t, s, c.CommandID, proto.CommandPending)
	}
}

func testCommandList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	mustCreate(t, s, NewDevice("a2"))
	var ids []string
	for i := range 7 {
		c := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, i))[0]
		ids = append(ids, c.CommandID)
		mustCreateCommands(t, s, NewCommand("a2", proto.CommandReboot, i))
	}
	if _, err := s.CancelCommand(ctx, ids[2], cmdT0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelCommand(ctx, ids[5], cmdT0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, more, err := s.DeviceCommands(ctx, "a1", after, 3, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			if c.DeviceID != "a1" {
				t.Fatalf("listed %s of device %s", c.CommandID, c.DeviceID)
			}
			got = append(got, c.CommandID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].CommandID
	}
	var want []string
	for i := len(ids) - 1; i >= 0; i-- {
		want = append(want, ids[i])
	}
	if !equalStrings(got, want) {
		t.Fatalf("DeviceCommands paged %v, want newest first %v", got, want)
	}
	cancelled, more, err := s.DeviceCommands(ctx, "a1", "", 10, proto.CommandCancelled)
	if err != nil || more || len(cancelled) != 2 || cancelled[0].CommandID != ids[5] || cancelled[1].CommandID != ids[2] {
		t.Fatalf("DeviceCommands(CANCELLED) = %v more=%v err=%v, want [%s %s]", cancelled, more, err, ids[5], ids[2])
	}
	pending, more, err := s.DeviceCommands(ctx, "a1", ids[4], 2, proto.CommandPending)
	if err != nil || !more || len(pending) != 2 || pending[0].CommandID != ids[3] || pending[1].CommandID != ids[1] {
		t.Fatalf("DeviceCommands(after %s, PENDING, 2) = %v more=%v err=%v", ids[4], pending, more, err)
	}
	if _, _, err := s.DeviceCommands(ctx, "nope", "", 10, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeviceCommands(unknown device) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.DeviceCommands(ctx, "a2", ids[0], 10, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeviceCommands with another device's cursor = %v, want ErrNotFound", err)
	}
	empty, more, err := s.DeviceCommands(ctx, "a1", ids[0], 10, "")
	if err != nil || more || len(empty) != 0 {
		t.Fatalf("DeviceCommands after the oldest = %v more=%v err=%v, want nothing", empty, more, err)
	}
}

func testCommandDeliverAndResult(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	mustCreate(t, s, NewDevice("a2"))
	wantOpen(t, s, "a1", false)
	c1 := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 0))[0]
	c2 := mustCreateCommands(t, s, NewCommand("a1", proto.CommandLock, 1))[0]
	mustCreateCommands(t, s, NewCommand("a2", proto.CommandLock, 1))
	wantOpen(t, s, "a1", true)
	wantOpen(t, s, "nope", false)
	t1 := cmdT0.Add(5 * time.Second)
	got, err := s.DeliverCommands(ctx, "a1", t1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].CommandID != c1.CommandID || got[1].CommandID != c2.CommandID {
		t.Fatalf("DeliverCommands = %v, want [%s %s] oldest first", got, c1.CommandID, c2.CommandID)
	}
	for _, c := range got {
		if c.State != proto.CommandDelivered || !c.Timestamps[proto.CommandDelivered].Equal(t1) {
			t.Fatalf("delivered %s is %s at %v", c.CommandID, c.State, c.Timestamps[proto.CommandDelivered])
		}
		wantState(t, s, c.CommandID, proto.CommandDelivered)
	}
	wantOpen(t, s, "a1", true) // DELIVERED is not finished
	// Fetched again (a lost answer): the same commands, still DELIVERED.
	again, err := s.DeliverCommands(ctx, "a1", t1.Add(time.Second), 100)
	if err != nil || len(again) != 2 {
		t.Fatalf("DeliverCommands again = %v, %v", again, err)
	}
	t2 := t1.Add(2 * time.Second)
	r := proto.CommandResult{State: proto.CommandAcknowledged, Output: "ok"}
	done, err := s.SetCommandResult(ctx, "a1", c1.CommandID, r, t2)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != proto.CommandAcknowledged || done.Result == nil || done.Result.Output != "ok" ||
		!done.Timestamps[proto.CommandAcknowledged].Equal(t2) || !done.Timestamps[proto.CommandPending].Equal(c1.CreatedAt) {
		t.Fatalf("after the result: %+v", done)
	}
	// NOT_NOW: offered again by the next delivery, then answered.
	if _, err := s.SetCommandResult(ctx, "a1", c2.CommandID, proto.CommandResult{State: proto.CommandNotNow, Message: "screen busy"}, t2); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, c2.CommandID, proto.CommandNotNow)
	wantOpen(t, s, "a1", true) // NOT_NOW is offered again
	next, err := s.DeliverCommands(ctx, "a1", t2.Add(time.Second), 100)
	if err != nil || len(next) != 1 || next[0].CommandID != c2.CommandID || next[0].State != proto.CommandDelivered {
		t.Fatalf("delivery after NOT_NOW = %v, %v; want %s DELIVERED again", next, err, c2.CommandID)
	}
	if _, err := s.SetCommandResult(ctx, "a1", c2.CommandID, proto.CommandResult{State: proto.CommandError, ErrorCode: "failed"}, t2.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rest, err := s.DeliverCommands(ctx, "a1", t2.Add(3*time.Second), 100); err != nil || len(rest) != 0 {
		t.Fatalf("delivery after every command finished = %v, %v", rest, err)
	}
	wantOpen(t, s, "a1", false)
	// The limit: the oldest first, the rest stay PENDING for the next fetch.
	var ids []string
	for i := range 3 {
		ids = append(ids, mustCreateCommands(t, s, NewCommand("a2", proto.CommandReboot, 10+i))[0].CommandID)
	}
	first, err := s.DeliverCommands(ctx, "a2", t2, 2)
	if err != nil || len(first) != 2 || first[0].CommandID == ids[2] || first[1].CommandID == ids[2] {
		t.Fatalf("DeliverCommands(limit 2) = %v, %v; want the two oldest", first, err)
	}
	wantState(t, s, ids[2], proto.CommandPending)
	if _, err := s.DeliverCommands(ctx, "nope", t2, 100); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeliverCommands(unknown device) = %v, want ErrNotFound", err)
	}
}

func testCommandResultRules(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	mustCreate(t, s, NewDevice("a2"))
	c := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 0))[0]
	ack := proto.CommandResult{State: proto.CommandAcknowledged}
	at := cmdT0.Add(time.Second)
	// Another device's result: as if the command did not exist.
	if _, err := s.SetCommandResult(ctx, "a2", c.CommandID, ack, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("result from another device = %v, want ErrNotFound", err)
	}
	wantState(t, s, c.CommandID, proto.CommandPending)
	if _, err := s.SetCommandResult(ctx, "a1", "nope", ack, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("result for an unknown command = %v, want ErrNotFound", err)
	}
	if _, err := s.SetCommandResult(ctx, "a1", c.CommandID, ack, at); err != nil {
		t.Fatal(err)
	}
	// Twice: refused, the first result stays.
	if _, err := s.SetCommandResult(ctx, "a1", c.CommandID, proto.CommandResult{State: proto.CommandError, ErrorCode: "failed"}, at); !errors.Is(err, store.ErrCommandState) {
		t.Fatalf("second result = %v, want ErrCommandState", err)
	}
	got, _ := s.Command(ctx, c.CommandID)
	if got.State != proto.CommandAcknowledged || got.Result.State != proto.CommandAcknowledged {
		t.Fatalf("the second result changed the command: %+v", got)
	}
	// Cancelled and expired: refused.
	cc := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 1))[0]
	if _, err := s.CancelCommand(ctx, cc.CommandID, at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetCommandResult(ctx, "a1", cc.CommandID, ack, at); !errors.Is(err, store.ErrCommandState) {
		t.Fatalf("result for a cancelled command = %v, want ErrCommandState", err)
	}
	wantState(t, s, cc.CommandID, proto.CommandCancelled)
	ce := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 2))[0]
	if _, err := s.SetCommandResult(ctx, "a1", ce.CommandID, ack, ce.ExpiresAt); !errors.Is(err, store.ErrCommandState) {
		t.Fatalf("result at the expiry = %v, want ErrCommandState", err)
	}
	wantState(t, s, ce.CommandID, proto.CommandPending)
	if _, err := s.ExpireCommands(ctx, ce.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetCommandResult(ctx, "a1", ce.CommandID, ack, cmdT0); !errors.Is(err, store.ErrCommandState) {
		t.Fatalf("result for an expired command = %v, want ErrCommandState", err)
	}
	wantState(t, s, ce.CommandID, proto.CommandExpired)
}

func testCommandCancel(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	c := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 0))[0]
	at := cmdT0.Add(time.Second)
	got, err := s.CancelCommand(ctx, c.CommandID, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != proto.CommandCancelled || !got.Timestamps[proto.CommandCancelled].Equal(at) {
		t.Fatalf("cancelled command = %+v", got)
	}
	if d, err := s.DeliverCommands(ctx, "a1", at, 100); err != nil || len(d) != 0 {
		t.Fatalf("a cancelled command was delivered: %v, %v", d, err)
	}
	if _, err := s.CancelCommand(ctx, c.CommandID, at); !errors.Is(err, store.ErrCommandState) {
		t.Fatalf("cancel twice = %v, want ErrCommandState", err)
	}
	delivered := mustCreateCommands(t, s, NewCommand("a1", proto.CommandReboot, 1))[0]
	if _, err := s.DeliverCommands(ctx, "a1", at, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelCommand(ctx, delivered.CommandID, at); !errors.Is(err, store.ErrCommandState) {
		t.Fatalf("cancel after delivery = %v, want ErrCommandState", err)
	}
	wantState(t, s, delivered.CommandID, proto.CommandDelivered)
	if _, err := s.CancelCommand(ctx, "nope", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel unknown = %v, want ErrNotFound", err)
	}
}

func testCommandExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	short := NewCommand("a1", proto.CommandReboot, 0)
	short.ExpiresAt = cmdT0.Add(time.Minute)
	long := NewCommand("a1", proto.CommandReboot, 0)
	delivered := NewCommand("a1", proto.CommandLock, 0)
	delivered.ExpiresAt = cmdT0.Add(2 * time.Minute)
	mustCreateCommands(t, s, short, long, delivered)
	if _, err := s.DeliverCommands(ctx, "a1", cmdT0.Add(time.Second), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelCommand(ctx, long.CommandID, cmdT0.Add(time.Second)); !errors.Is(err, store.ErrCommandState) {
		t.Fatal("delivered command cancelled")
	}
	n, err := s.ExpireCommands(ctx, cmdT0.Add(time.Minute-time.Nanosecond))
	if err != nil || n != 0 {
		t.Fatalf("ExpireCommands before any expiry = %d, %v", n, err)
	}
	n, err = s.ExpireCommands(ctx, cmdT0.Add(90*time.Second))
	if err != nil || n != 1 {
		t.Fatalf("ExpireCommands = %d, %v; want 1", n, err)
	}
	wantState(t, s, short.CommandID, proto.CommandExpired)
	wantState(t, s, long.CommandID, proto.CommandDelivered)
	// Delivery past an expiry the timer has not seen yet expires it
	// instead of delivering it.
	got, err := s.DeliverCommands(ctx, "a1", cmdT0.Add(3*time.Minute), 100)
	if err != nil || len(got) != 1 || got[0].CommandID != long.CommandID {
		t.Fatalf("DeliverCommands past the lock's expiry = %v, %v; want only %s", got, err, long.CommandID)
	}
	wantState(t, s, delivered.CommandID, proto.CommandExpired)
	c, _ := s.Command(ctx, delivered.CommandID)
	if !c.Timestamps[proto.CommandExpired].Equal(cmdT0.Add(3 * time.Minute)) {
		t.Fatalf("EXPIRED at %v", c.Timestamps[proto.CommandExpired])
	}
	n, err = s.ExpireCommands(ctx, cmdT0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("ExpireCommands at the end = %d, %v; want 1", n, err)
	}
	wantState(t, s, long.CommandID, proto.CommandExpired)
	if n, _ := s.ExpireCommands(ctx, cmdT0.Add(time.Hour)); n != 0 {
		t.Fatalf("expired %d commands twice", n)
	}
}

func testCommandWipe(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	mustCreate(t, s, NewDevice("a2"))
	reboot := NewCommand("a1", proto.CommandReboot, 0)
	lock := NewCommand("a1", proto.CommandLock, 0)
	done := NewCommand("a1", proto.CommandReboot, 0)
	other := NewCommand("a2", proto.CommandReboot, 0)
	mustCreateCommands(t, s, reboot, lock, done, other)
	if _, err := s.DeliverCommands(ctx, "a1", cmdT0.Add(time.Second), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetCommandResult(ctx, "a1", done.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, cmdT0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	wipe := NewCommand("a1", proto.CommandWipe, 2)
	mustCreateCommands(t, s, wipe)
	wantState(t, s, reboot.CommandID, proto.CommandCancelled)
	wantState(t, s, lock.CommandID, proto.CommandCancelled)
	wantState(t, s, done.CommandID, proto.CommandAcknowledged)
	wantState(t, s, other.CommandID, proto.CommandPending)
	wantState(t, s, wipe.CommandID, proto.CommandPending)
	got, err := s.DeliverCommands(ctx, "a1", cmdT0.Add(3*time.Second), 100)
	if err != nil || len(got) != 1 || got[0].CommandID != wipe.CommandID {
		t.Fatalf("after the wipe the device gets %v, %v; want only the wipe", got, err)
	}
	if _, err := s.CreateCommands(ctx, []proto.Command{NewCommand("a1", proto.CommandWipe, 4)}); !errors.Is(err, store.ErrCommandConflict) {
		t.Fatalf("second wipe = %v, want ErrCommandConflict", err)
	}
}

func testCommandDeviceDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("a1"))
	mustCreate(t, s, NewDevice("a2"))
	open := NewCommand("a1", proto.CommandReboot, 0)
	finished := NewCommand("a1", proto.CommandLock, 0)
	other := NewCommand("a2", proto.CommandReboot, 0)
	mustCreateCommands(t, s, open, finished, other)
	if _, err := s.SetCommandResult(ctx, "a1", finished.CommandID, proto.CommandResult{State: proto.CommandAcknowledged}, cmdT0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, open.CommandID, proto.CommandCancelled)
	wantState(t, s, finished.CommandID, proto.CommandAcknowledged)
	wantState(t, s, other.CommandID, proto.CommandPending)
	if _, err := s.CreateCommands(ctx, []proto.Command{NewCommand("a1", proto.CommandReboot, 2)}); !errors.Is(err, store.ErrUnknownDevice) {
		t.Fatalf("command for a deleted device = %v, want ErrUnknownDevice", err)
	}
	// The cancelled command no longer expires (it is final).
	if n, err := s.ExpireCommands(ctx, cmdT0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("ExpireCommands = %d, %v; want only a2's command", n, err)
	}
}

func testCommandAudit(t *testing.T, s store.Store) {
	mustCreate(t, s, NewDevice("a1"))
	c := NewCommand("a1", proto.CommandReboot, 0)
	if _, err := s.CreateCommands(auditCtx("command.create", "a1"), []proto.Command{c}); err != nil {
		t.Fatal(err)
	}
	// A refused change records nothing.
	if _, err := s.CreateCommands(auditCtx("command.create", "ghost"), []proto.Command{NewCommand("ghost", proto.CommandReboot, 0)}); err == nil {
		t.Fatal("command for an unknown device accepted")
	}
	if _, err := s.CancelCommand(auditCtx("command.cancel", c.CommandID), c.CommandID, cmdT0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelCommand(auditCtx("command.cancel", c.CommandID), c.CommandID, cmdT0.Add(time.Second)); err == nil {
		t.Fatal("cancelled twice")
	}
	want := []string{"command.create a1", "command.cancel " + c.CommandID}
	if got := actions(t, s); !equalStrings(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

// wantOpen fails unless HasOpenCommands(id) is want.
func wantOpen(t *testing.T, s store.Store, id string, want bool) {
	t.Helper()
	if open, err := s.HasOpenCommands(context.Background(), id); err != nil || open != want {
		t.Fatalf("HasOpenCommands(%s) = %v, %v; want %v", id, open, err, want)
	}
}
