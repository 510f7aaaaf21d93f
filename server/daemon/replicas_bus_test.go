package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/servertest/ssetest"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/postgres/pgtest"
)

// busMsg is one message seen on the replicas' NOTIFY channel: its kind,
// its device (or operator token name) and its third field, if any.
type busMsg struct {
	kind, id string
	arg      json.RawMessage
}

// tapBus listens on the replicas' channel with a connection of its own and
// returns every message any replica publishes.
func tapBus(t *testing.T, url string) <-chan busMsg {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.BusChannel); err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan busMsg, 10000)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; conn.Close(context.Background()) })
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			var p struct {
				M [][]json.RawMessage `json:"m"`
			}
			if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
				t.Errorf("undecodable bus payload %q: %v", n.Payload, err)
				return
			}
			for _, parts := range p.M {
				var m busMsg
				json.Unmarshal(parts[0], &m.kind)
				json.Unmarshal(parts[1], &m.id)
				if len(parts) > 2 {
					m.arg = parts[2]
				}
				out <- m
			}
		}
	}()
	return out
}

// busUntil reads the tap until want matches a message, and returns the
// messages read before it.
func busUntil(t *testing.T, tap <-chan busMsg, what string, want func(busMsg) bool) []busMsg {
	t.Helper()
	var before []busMsg
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-tap:
			if want(m) {
				return before
			}
			before = append(before, m)
		case <-deadline:
			t.Fatalf("timed out waiting for %s on the bus; saw %v", what, before)
		}
	}
}

// TestReplicasBusCarriesEventsOnlyForStreams: with no live stream open on
// any replica, a device's enrollment, connection and report put nothing on
// the bus and an edit puts only its ring there; once a stream is open on B,
// A sends its device events (reports included) and B's stream shows them;
// when it closes, A stops.
func TestReplicasBusCarriesEventsOnlyForStreams(t *testing.T) {
	url := pgtest.NewDatabase(t)
	tap := tapBus(t, url)
	a := startReplica(t, url)
	b := startReplica(t, url)
	// Until a replica has read the others' state it assumes they stream.
	until(t, "the replicas to learn that nobody streams", func() bool {
		return !a.d.node.StreamsElsewhere() && !b.d.node.StreamsElsewhere()
	})
	onA := runAgent(t, a.d.HTTPAddr(), "tcp://"+a.d.MQTTAddr(), a.d.EnrollToken())
	until(t, "the agent to enroll and report", func() bool {
		id := onA.id(t)
		return id != "" && status(t, a, id).AppliedVersion == 1 && status(t, b, id).Connected
	})
	id := onA.id(t)

	// The edit's ring is published after everything the enrollment,
	// connection and first report could have put on the bus.
	edit(t, a, id, `{"cameraDisabled":true}`)
	before := busUntil(t, tap, "the edit's ring", func(m busMsg) bool { return m.kind == "r" && m.id == id })
	for _, m := range before {
		if m.kind == "e" || m.kind == "r" {
			t.Errorf("with no stream open the bus carried %s %s %s before the edit's ring", m.kind, m.id, m.arg)
		}
	}
	until(t, "the device to apply the edit", func() bool { return onA.applied() == 2 })

	// A stream on B: A learns at once and sends B its device's events.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := liveEventsCtx(t, ctx, b, b.d.AdminToken())
	busUntil(t, tap, "B's streams message", func(m busMsg) bool { return m.kind == "s" && string(m.arg) == "true" })
	until(t, "A to learn that B streams", a.d.node.StreamsElsewhere)
	edit(t, a, id, `{"cameraDisabled":false}`)
	seen := map[proto.EventCause]bool{}
	until(t, "B's stream to show A's edit and the device's report", func() bool {
		for {
			select {
			case ev := <-events:
				if ev.DeviceID == id && ev.DesiredVersion == 3 {
					seen[ev.Cause] = true
				}
			default:
				return seen[proto.CauseEdit] && seen[proto.CauseReport]
			}
		}
	})
	busUntil(t, tap, "A's report event", func(m busMsg) bool { return m.kind == "e" && m.id == id && string(m.arg) == `"report"` })

	// The client goes away: B notices on its next write to the stream
	// (edits on A give it some), says it streams no more, and A stops.
	cancel()
	deadline := time.Now().Add(30 * time.Second)
	for closed, on := false, true; !closed; {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for B's no-streams message on the bus")
		}
		on = !on
		edit(t, a, id, fmt.Sprintf(`{"cameraDisabled":%v}`, on))
		wait := time.After(250 * time.Millisecond)
		for drained := false; !drained && !closed; {
			select {
			case m := <-tap:
				closed = m.kind == "s" && string(m.arg) == "false"
			case <-wait:
				drained = true
			}
		}
	}
	until(t, "A to learn that B stopped streaming", func() bool { return !a.d.node.StreamsElsewhere() })
}

// TestReplicasRevokeOperator: deleting an operator token on replica A
// closes, at once, the token's live stream and MQTT session held by
// replica B (and A's own), and B refuses the token from then on.
func TestReplicasRevokeOperator(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := startReplica(t, url)
	b := startReplica(t, url)
	var tok proto.OperatorToken
	if st, _, body := send(t, "POST", "http://"+a.d.HTTPAddr()+"/tokens", a.d.AdminToken(), `{"name":"ci","role":"viewer"}`, &tok); st != 201 {
		t.Fatalf("POST /tokens: %d %s", st, body)
	}
	streamB := ssetest.OpenReady(t, "http://"+b.d.HTTPAddr(), tok.Token)
	streamA := ssetest.OpenReady(t, "http://"+a.d.HTTPAddr(), tok.Token)
	lost := make(chan error, 1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + b.d.MQTTAddr()).
		SetClientID("ci-watch").SetUsername("operator").SetPassword(tok.Token).SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err }))
	if ct := c.Connect(); !ct.WaitTimeout(10*time.Second) || ct.Error() != nil {
		t.Fatalf("operator connect to B: %v", ct.Error())
	}
	defer c.Disconnect(0)

	req, _ := http.NewRequest("DELETE", "http://"+a.d.HTTPAddr()+"/tokens/ci", nil)
	req.Header.Set("Authorization", "Bearer "+a.d.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE /tokens/ci: %d", resp.StatusCode)
	}
	streamA.Ended()
	streamB.Ended()
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("B kept the revoked token's MQTT session")
	}
	if st, _, _ := send(t, "GET", "http://"+b.d.HTTPAddr()+"/devices", tok.Token, "", nil); st != 401 {
		t.Errorf("B answered the deleted token %d, want 401", st)
	}
}
