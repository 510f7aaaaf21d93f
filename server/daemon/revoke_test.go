package daemon

import (
	"errors"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
)

// TestDeleteDeviceRevokes: DELETE /devices/{id} goes through
// service.RevokePrincipal, which closes the device's live MQTT session on
// the real broker at once (the agent learns without waiting for a sync);
// the old secret then logs in nowhere, and another device's session is
// left alone.
func TestDeleteDeviceRevokes(t *testing.T) {
	d, url := startDaemon(t, DaemonConfig{})
	revoked := make(chan service.Principal, 4)
	d.api.Service().OnRevoke(func(p service.Principal) { revoked <- p })

	connect := func(e proto.EnrollResponse, lost chan<- error) (mqtt.Client, error) {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + d.MQTTAddr()).
			SetClientID(e.DeviceID).SetUsername(e.DeviceID).SetPassword(e.DeviceSecret).
			SetAutoReconnect(false).SetConnectRetry(false)
		if lost != nil {
			opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
		}
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return c, errors.New("no CONNACK within 10s")
		}
		return c, tok.Error()
	}
	var a, b proto.EnrollResponse
	send(t, "POST", url+"/enroll", enrollToken, `{"model":"m","osVersion":"1","agentVersion":"0.1.0"}`, &a)
	send(t, "POST", url+"/enroll", enrollToken, `{"model":"m","osVersion":"1","agentVersion":"0.1.0"}`, &b)
	lostA, lostB := make(chan error, 1), make(chan error, 1)
	ca, err := connect(a, lostA)
	if err != nil {
		t.Fatalf("device A cannot connect: %v", err)
	}
	defer ca.Disconnect(0)
	cb, err := connect(b, lostB)
	if err != nil {
		t.Fatalf("device B cannot connect: %v", err)
	}
	defer cb.Disconnect(0)

	if st, _, body := send(t, "DELETE", url+"/devices/"+a.DeviceID, adminToken, "", nil); st != 204 {
		t.Fatalf("DELETE: %d %s", st, body)
	}
	select {
	case p := <-revoked:
		if p.Kind != service.PrincipalDevice || p.Name != a.DeviceID {
			t.Fatalf("revoked %+v, want device %s", p, a.DeviceID)
		}
	default:
		t.Fatal("DELETE answered before service.RevokePrincipal ran")
	}
	select {
	case <-lostA:
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted device's MQTT session stayed open")
	}
	if _, err := connect(a, nil); err == nil {
		t.Fatal("the deleted device logged in again with its old secret")
	}
	if !cb.IsConnectionOpen() {
		t.Fatal("another device's session was closed")
	}
	select {
	case err := <-lostB:
		t.Fatalf("another device lost its session: %v", err)
	default:
	}
}
