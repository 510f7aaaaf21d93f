package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge/fcmtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

// TestFCMHungSendDoesNotHoldOthers: one FCM request that never answers
// must not hold the doorbells of other devices, even while FCM answers
// half of the requests with 503 (issue 17, finding 5).
func TestFCMHungSendDoesNotHoldOthers(t *testing.T) {
	const n = 200
	h := newHarness(t, false, func(c *FCMConfig) { c.MaxRetries = 8 })
	hung := token("hung")
	h.srv.HangToken(hung, -1)
	h.run()
	h.ring(Ring{DeviceID: "hung", Version: 1, FCMToken: hung})
	testkit.Eventually(t, deadline, "the hung request to reach the server", func() bool { return h.srv.Hanging() == 1 })

	h.srv.FailEvery(fcmtest.Unavailable, 2)
	start := time.Now()
	rings := make([]Ring, n)
	for i := range rings {
		rings[i] = Ring{DeviceID: fmt.Sprintf("dev-%d", i), Version: 1, FCMToken: token(fmt.Sprintf("t%d", i))}
	}
	h.ring(rings...)
	// The SDK itself retries a 503 up to four times with backoff (7.5 s in
	// all), so this waits longer than fcmtest.WaitDelivered.
	testkit.Eventually(t, time.Minute, "every doorbell delivered", func() bool { return len(h.srv.Delivered()) >= n })
	t.Logf("%d doorbells delivered in %v with one send hung and every second request answered 503 (stats %+v)",
		n, time.Since(start), h.bell.Stats())
	if got := h.srv.Hanging(); got != 1 {
		t.Errorf("%d requests hanging, want the 1 hung one still hanging (the default send deadline is far)", got)
	}
}

// TestFCMSendDeadline: a send that hangs is abandoned after the send
// deadline and retried, so the device still gets its doorbell.
func TestFCMSendDeadline(t *testing.T) {
	h := newHarness(t, false, func(c *FCMConfig) { c.SendTimeout = 200 * time.Millisecond })
	hung := token("hung")
	h.srv.HangToken(hung, 1) // only the first request hangs
	h.run()
	start := time.Now()
	h.ring(Ring{DeviceID: "hung", Version: 1, FCMToken: hung})
	s := h.waitSettled(1)
	if s[0].err != nil {
		t.Fatalf("ring not delivered after the hung send: %v", s[0].err)
	}
	t.Logf("delivered %v after the first send hung", time.Since(start))
	if st := h.bell.Stats(); st.Sent != 1 || st.Retried != 1 {
		t.Errorf("stats = %+v, want 1 sent after 1 retry", st)
	}
	if got := len(h.srv.Delivered()); got != 1 {
		t.Errorf("%d delivered, want 1", got)
	}
}
