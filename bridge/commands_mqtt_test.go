package bridge_test

import (
	"testing"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
)

// TestMQTTCommandDoorbell: a command ring publishes {"type":"command_pending"}
// on the device's doorbell topic, and a policy ring for the same device
// queued at the same time is published too (neither coalesces into the
// other).
func TestMQTTCommandDoorbell(t *testing.T) {
	pub, ch := recorder()
	bell := bridge.NewMQTTBell(pub, nil)
	bell.Ring(
		bridge.Ring{DeviceID: "d1", Version: 3},
		bridge.Ring{DeviceID: "d1", Command: true},
		bridge.Ring{DeviceID: "d1", Command: true},
	)
	run(t, bell)
	got := map[string]bool{}
	for range 2 {
		p := next(t, ch)
		if p.topic != proto.PolicyChangedTopic("d1") || p.retain || p.qos != 1 {
			t.Fatalf("published %+v, want QoS 1, not retained, on the device's topic", p)
		}
		got[p.payload] = true
	}
	for _, want := range []string{`{"type":"policy_changed","version":3}`, `{"type":"command_pending"}`} {
		if !got[want] {
			t.Errorf("published %v, want %s among them", got, want)
		}
	}
	select {
	case p := <-ch:
		t.Fatalf("a third publish: %+v (the two command rings should coalesce)", p)
	default:
	}
}
