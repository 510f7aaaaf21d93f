package bridge

import (
	"slices"
	"testing"
)

// TestFCMCommandDoorbell: a command ring is its own content-free message with
// its own collapse key, and neither kind of ring displaces the other for the
// same device, in the queue or at FCM.
func TestFCMCommandDoorbell(t *testing.T) {
	h := newHarness(t, false, nil)
	tok := token("cmd")
	h.ring(
		Ring{DeviceID: "d1", Version: 4, FCMToken: tok},
		Ring{DeviceID: "d1", FCMToken: tok, Command: true},
		Ring{DeviceID: "d1", FCMToken: tok, Command: true}, // coalesces with the one before
		Ring{DeviceID: "d1", Version: 5, FCMToken: tok},    // coalesces with version 4
	)
	h.run()
	h.waitSettled(2)
	msgs := h.srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("server received %d messages, want a policy and a command doorbell", len(msgs))
	}
	var policy, command int
	for _, m := range msgs {
		switch m.Data["type"] {
		case "policy_changed":
			policy++
			if m.Android.CollapseKey != "policy_changed" || m.Data["version"] != "5" {
				t.Errorf("policy doorbell: collapse key %q version %q", m.Android.CollapseKey, m.Data["version"])
			}
		case "command_pending":
			command++
			if m.Android.CollapseKey != "command_pending" || m.Android.Priority != "high" {
				t.Errorf("command doorbell: collapse key %q priority %q, want command_pending, high", m.Android.CollapseKey, m.Android.Priority)
			}
			if len(m.Data) != 1 {
				t.Errorf("command doorbell data = %v, want only its type", m.Data)
			}
			if keys := jsonKeys(t, m.Raw); !slices.Equal(keys, []string{"android", "data", "token"}) {
				t.Errorf("message keys = %v", keys)
			}
		default:
			t.Errorf("unexpected doorbell %v", m.Data)
		}
	}
	if policy != 1 || command != 1 {
		t.Fatalf("sent %d policy and %d command doorbells, want 1 and 1", policy, command)
	}
}
