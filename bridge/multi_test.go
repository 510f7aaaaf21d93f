package bridge_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
)

type fakeBell struct {
	ring func(rings ...bridge.Ring)
	run  func(ctx context.Context) error
}

var _ bridge.Bell = (*fakeBell)(nil)

func (f *fakeBell) Ring(rings ...bridge.Ring)     { f.ring(rings...) }
func (f *fakeBell) Run(ctx context.Context) error { return f.run(ctx) }

// recordingBell records its rings.
type recordingBell struct {
	mu    sync.Mutex
	rings []bridge.Ring
}

func (r *recordingBell) got() []bridge.Ring {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bridge.Ring(nil), r.rings...)
}

func (r *recordingBell) bell(run func(ctx context.Context) error) *fakeBell {
	return &fakeBell{
		ring: func(rings ...bridge.Ring) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.rings = append(r.rings, rings...)
		},
		run: run,
	}
}

func TestMultiRingsEveryBell(t *testing.T) {
	var a, b recordingBell
	runUntilDone := func(ctx context.Context) error { <-ctx.Done(); return nil }
	m := bridge.Multi(a.bell(runUntilDone), nil, b.bell(runUntilDone))

	first := bridge.Ring{DeviceID: "dev-a", Version: 2, FCMToken: "tok-a"}
	second := bridge.Ring{DeviceID: "dev-b", Version: 9}
	m.Ring(first, second)
	m.Ring(second)

	want := []bridge.Ring{first, second, second}
	for name, r := range map[string]*recordingBell{"first bell": &a, "second bell": &b} {
		if got := r.got(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s rang %+v, want %+v", name, got, want)
		}
	}
}

func TestMultiRunWaitsForEveryBell(t *testing.T) {
	errEarly := errors.New("early failure")
	var a, b recordingBell
	aReturned := make(chan struct{})
	bStarted := make(chan struct{})
	bRelease := make(chan struct{})
	m := bridge.Multi(
		a.bell(func(ctx context.Context) error { // returns at once, before ctx is done
			defer close(aReturned)
			return errEarly
		}),
		b.bell(func(ctx context.Context) error { // outlives ctx until released
			close(bStarted)
			<-ctx.Done()
			<-bRelease
			return nil
		}),
	)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	for _, ch := range []chan struct{}{aReturned, bStarted} {
		select {
		case <-ch:
		case <-time.After(wait):
			t.Fatal("a bell's Run was not started")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before ctx was done", err)
	default:
	}

	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a bell was still running", err)
	default:
	}

	close(bRelease)
	select {
	case err := <-done:
		if !errors.Is(err, errEarly) {
			t.Errorf("Run = %v, want it to carry %v", err, errEarly)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after every bell returned")
	}
}

func TestMultiWithoutBellsWaitsForCtx(t *testing.T) {
	m := bridge.Multi()
	m.Ring(bridge.Ring{DeviceID: "dev-a", Version: 1}) // a no-op, not a panic
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before ctx was done", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after ctx was cancelled")
	}
}
