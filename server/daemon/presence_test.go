package daemon

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/servertest/ssetest"
)

// TestDaemonStreamsPresence runs a whole daemon: a device's MQTT session
// opening and closing reaches the stream, the daemon's own OnPresence still
// runs, and Run stops cleanly with a stream open.
func TestDaemonStreamsPresence(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	presence := make(chan bool, 10)
	d, err := NewDaemon(ctx, DaemonConfig{
		DataDir: filepath.Join(t.TempDir(), "data"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		AdminToken: adminToken, EnrollToken: enrollToken, Out: io.Discard,
		OnPresence: func(_ string, connected bool) { presence <- connected },
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	url := "http://" + d.HTTPAddr()
	_ = url
	deadline := time.Now().Add(20 * time.Second)
	for st, _, _ := send(t, "GET", url+"/healthz", "", "", nil); st != 200; st, _, _ = send(t, "GET", url+"/healthz", "", "", nil) {
		if time.Now().After(deadline) {
			t.Fatal("daemon not healthy within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	s := ssetest.Open(t, url, adminToken)
	if ev := s.Next(); ev.Name != proto.EventReady {
		t.Fatalf("first event %q", ev.Name)
	}
	var e proto.EnrollResponse
	send(t, "POST", url+"/enroll", enrollToken, `{"model":"m","osVersion":"1","agentVersion":"0.1.0"}`, &e)
	if ev := s.Device(); ev.Cause != proto.CauseEnroll || ev.Connected {
		t.Fatalf("after enroll: %+v", ev)
	}

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + d.MQTTAddr()).
		SetClientID(e.DeviceID).SetUsername(e.DeviceID).SetPassword(e.DeviceSecret).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device cannot connect: %v", tok.Error())
	}
	if ev := s.Device(); ev.DeviceID != e.DeviceID || ev.Cause != proto.CauseConnect || !ev.Connected {
		t.Fatalf("after connect: %+v", ev)
	}
	c.Disconnect(0)
	if ev := s.Device(); ev.Cause != proto.CauseDisconnect || ev.Connected {
		t.Fatalf("after disconnect: %+v", ev)
	}
	for _, want := range []bool{true, false} {
		select {
		case got := <-presence:
			if got != want {
				t.Fatalf("DaemonConfig.OnPresence got %v, want %v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("DaemonConfig.OnPresence was not called")
		}
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run with an open stream: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel with a stream open")
	}
	s.Ended()
}
