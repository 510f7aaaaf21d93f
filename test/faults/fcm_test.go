package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge/fcmtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

// TestFCMHangsAndErrors: with one FCM request hanging and every second one
// answered 503, every other phone still gets its doorbell (issue 17,
// finding 5), and the server keeps serving.
func TestFCMHangsAndErrors(t *testing.T) {
	const phones = 100
	fcm := fcmtest.NewServer(t)
	s := startServer(t, t.TempDir(), withArgs("--fcm-project", "faults", "--fcm-endpoint", fcm.URL, "--fcm-send-timeout", "3s"))
	creds := s.enroll(phones)
	dc := s.deviceClient()
	for i, c := range creds {
		if err := dc.RegisterToken(context.Background(), c, fmt.Sprintf("phone-%03d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxx")); err != nil {
			t.Fatal(err)
		}
	}
	fcm.HangToken(fmt.Sprintf("phone-%03d-%s", 0, "xxxxxxxxxxxxxxxxxxxxxxxx"), -1)
	fcm.FailEvery(fcmtest.Unavailable, 2)
	// The hung phone first, so its send is in flight when the others come.
	s.mustCall("PUT", "/devices/"+creds[0].DeviceID+"/policy", adminToken, `{"cameraDisabled":true}`, 200, nil)
	testkit.Eventually(t, 30*time.Second, "the hung FCM request", func() bool { return fcm.Hanging() >= 1 })
	t0 := time.Now()
	for _, c := range creds[1:] {
		s.mustCall("PUT", "/devices/"+c.DeviceID+"/policy", adminToken, `{"cameraDisabled":true}`, 200, nil)
	}
	testkit.Eventually(t, 2*time.Minute, "a doorbell for every other phone", func() bool {
		got := map[string]bool{}
		for _, m := range fcm.Delivered() {
			got[m.Token] = true
		}
		return len(got) >= phones-1
	})
	t.Logf("%d phones rung %v after their edits, with one send hanging and 50%% 503s", phones-1, time.Since(t0))
	if !s.serves() {
		t.Error("the server stopped serving")
	}
}
