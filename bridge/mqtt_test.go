package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
)

// wait bounds every wait in these tests; it is a failure guard only.
const wait = 5 * time.Second

type fakePublisher struct {
	publish func(topic string, payload []byte, retain bool, qos byte) error
}

var _ bridge.Publisher = (*fakePublisher)(nil)

func (f *fakePublisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return f.publish(topic, payload, retain, qos)
}

type published struct {
	topic   string
	payload string
	retain  bool
	qos     byte
}

// recorder returns a publisher that sends every publish to the channel.
func recorder() (*fakePublisher, chan published) {
	ch := make(chan published, 1000)
	return &fakePublisher{publish: func(topic string, payload []byte, retain bool, qos byte) error {
		ch <- published{topic, string(payload), retain, qos}
		return nil
	}}, ch
}

// run starts bell.Run and returns a function that stops it and returns its
// error; the test fails if it does not stop.
func run(t *testing.T, bell bridge.Bell) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bell.Run(ctx) }()
	var stopped bool
	var err error
	stop = func() error {
		t.Helper()
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
			return err
		case <-time.After(wait):
			t.Fatal("Run did not return after ctx was cancelled")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

func next(t *testing.T, ch <-chan published) published {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(wait):
		t.Fatal("timed out waiting for a publish")
		return published{}
	}
}

func doorbellPayload(version int64) string {
	return fmt.Sprintf(`{"type":"policy_changed","version":%d}`, version)
}

func TestMQTTBellDelivers(t *testing.T) {
	pub, ch := recorder()
	bell := bridge.NewMQTTBell(pub, nil)
	bell.Ring(bridge.Ring{DeviceID: "dev-a", Version: 7, FCMToken: "ignored"}) // before Run: queued
	stop := run(t, bell)

	got := next(t, ch)
	want := published{topic: "devices/dev-a/policy_changed", payload: doorbellPayload(7), retain: false, qos: 1}
	if got != want {
		t.Errorf("published %+v, want %+v", got, want)
	}
	if got.topic != proto.PolicyChangedTopic("dev-a") {
		t.Errorf("topic %q differs from proto.PolicyChangedTopic", got.topic)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if s := bell.Stats(); s != (bridge.MQTTStats{Rung: 1}) {
		t.Errorf("Stats = %+v, want 1 rung", s)
	}
}

func TestMQTTBellCoalesces(t *testing.T) {
	tests := []struct {
		name        string
		versions    []int64 // rung for dev-a while the first publish is blocked
		wantVersion int64
	}{
		{name: "rising", versions: []int64{2, 3, 4}, wantVersion: 4},
		{name: "out of order", versions: []int64{4, 2, 3}, wantVersion: 4},
		{name: "one call", versions: []int64{3, 4, 2}, wantVersion: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			release := make(chan struct{})
			ch := make(chan published, 100)
			first := true
			pub := &fakePublisher{publish: func(topic string, payload []byte, retain bool, qos byte) error {
				if first { // only the worker goroutine calls Publish
					first = false
					close(started)
					<-release
					return nil
				}
				ch <- published{topic, string(payload), retain, qos}
				return nil
			}}
			bell := bridge.NewMQTTBell(pub, nil)
			stop := run(t, bell)

			bell.Ring(bridge.Ring{DeviceID: "dev-a", Version: 1})
			select {
			case <-started:
			case <-time.After(wait):
				t.Fatal("first publish never started")
			}
			if tt.name == "one call" {
				rings := make([]bridge.Ring, len(tt.versions))
				for i, v := range tt.versions {
					rings[i] = bridge.Ring{DeviceID: "dev-a", Version: v}
				}
				bell.Ring(rings...)
			} else {
				for _, v := range tt.versions {
					bell.Ring(bridge.Ring{DeviceID: "dev-a", Version: v})
				}
			}
			close(release)

			if got := next(t, ch); got.topic != proto.PolicyChangedTopic("dev-a") || got.payload != doorbellPayload(tt.wantVersion) {
				t.Fatalf("after release published %+v, want dev-a version %d", got, tt.wantVersion)
			}
			// A later ring for another device comes next: no second dev-a
			// publish was queued in between.
			bell.Ring(bridge.Ring{DeviceID: "dev-z", Version: 1})
			if got := next(t, ch); got.topic != proto.PolicyChangedTopic("dev-z") {
				t.Fatalf("next published %+v, want dev-z", got)
			}
			stop()
			if s := bell.Stats(); s.Rung != 3 {
				t.Errorf("Stats.Rung = %d, want 3 (first, coalesced, dev-z)", s.Rung)
			}
		})
	}
}

func TestMQTTBellDeliversEveryDevice(t *testing.T) {
	pub, ch := recorder()
	bell := bridge.NewMQTTBell(pub, nil)
	run(t, bell)

	want := map[string]string{}
	var batch []bridge.Ring
	for i := range 50 {
		id := fmt.Sprintf("dev-%02d", i)
		r := bridge.Ring{DeviceID: id, Version: int64(i + 1)}
		want[proto.PolicyChangedTopic(id)] = doorbellPayload(r.Version)
		if i%2 == 0 {
			bell.Ring(r) // one by one...
		} else {
			batch = append(batch, r) // ...and in one call
		}
	}
	bell.Ring(batch...)

	got := map[string]string{}
	for range want {
		p := next(t, ch)
		if _, dup := got[p.topic]; dup {
			t.Errorf("%s published twice", p.topic)
		}
		got[p.topic] = p.payload
	}
	for topic, payload := range want {
		if got[topic] != payload {
			t.Errorf("%s: published %q, want %q", topic, got[topic], payload)
		}
	}
}

func TestMQTTBellDropsFailedPublish(t *testing.T) {
	ch := make(chan published, 10)
	pub := &fakePublisher{publish: func(topic string, payload []byte, retain bool, qos byte) error {
		ch <- published{topic, string(payload), retain, qos}
		if topic == proto.PolicyChangedTopic("dev-bad") {
			return errors.New("broker closed")
		}
		return nil
	}}
	bell := bridge.NewMQTTBell(pub, nil)
	stop := run(t, bell)

	bell.Ring(bridge.Ring{DeviceID: "dev-bad", Version: 1})
	if got := next(t, ch); got.topic != proto.PolicyChangedTopic("dev-bad") {
		t.Fatalf("published %+v, want dev-bad", got)
	}
	// The failure is not retried, and the bell keeps working.
	bell.Ring(bridge.Ring{DeviceID: "dev-ok", Version: 1})
	if got := next(t, ch); got.topic != proto.PolicyChangedTopic("dev-ok") {
		t.Fatalf("published %+v, want dev-ok", got)
	}
	stop()
	if s := bell.Stats(); s != (bridge.MQTTStats{Rung: 1, Failed: 1}) {
		t.Errorf("Stats = %+v, want 1 rung, 1 failed", s)
	}
}

func TestMQTTBellRunStopsOnCancel(t *testing.T) {
	pub, _ := recorder()
	bell := bridge.NewMQTTBell(pub, nil)
	stop := run(t, bell)
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}

	// Ring never blocks, even with nobody delivering.
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			bell.Ring(bridge.Ring{DeviceID: "dev-a", Version: int64(i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Ring blocked after Run returned")
	}
}
