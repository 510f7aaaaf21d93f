package test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/bridge/fcmtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// phone is an in-process agent in phone mode: no MQTT; its only doorbell is
// what the fake FCM server receives for its token, handed to OnPush as the
// Android FirebaseMessagingService would.
type phone struct {
	agent *agent.Agent
	ids   *agent.FileIDStore
	mu    sync.Mutex
	token string
}

func startPhone(t *testing.T, srv *serverProc, fake *fcmtest.Server, token string) *phone {
	t.Helper()
	p := &phone{token: token, ids: agent.NewFileIDStore(t.TempDir())}
	var err error
	p.agent, err = agent.New(agent.Config{
		ServerURL: srv.url, ServerPin: srv.pin, EnrollToken: srv.enroll, DisableMQTT: true, Interval: time.Hour,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: p.ids,
		Model: "Pixel 8", OSVersion: "14", AgentVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.OnMessage(func(m fcmtest.Message) {
		p.mu.Lock()
		mine := m.Token == p.token
		p.mu.Unlock()
		if mine && m.Status == 200 {
			p.agent.OnPush(m.Data)
		}
	})
	if err := p.agent.SetPushToken(token); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.agent.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func (p *phone) newToken(t *testing.T, token string) {
	t.Helper()
	p.mu.Lock()
	p.token = token
	p.mu.Unlock()
	if err := p.agent.SetPushToken(token); err != nil {
		t.Fatal(err)
	}
}

// TestPhoneConvergesThroughFCM: a phone-mode agent with no MQTT converges on
// an edit through the FCM doorbell alone (its periodic interval is an hour),
// a dead token is deleted, and a new token brings the doorbell back.
func TestPhoneConvergesThroughFCM(t *testing.T) {
	fake := fcmtest.NewServer(t)
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0",
		"--fcm-project", "doorbell-test", "--fcm-endpoint", fake.URL, "--fcm-ttl", "10m")
	ph := startPhone(t, srv, fake, "phone-token-1")

	var id string
	testkit.Eventually(t, 30*time.Second, "phone enrolled, registered and COMPLIANT", func() bool {
		if id = ph.agent.DeviceID(); id == "" {
			return false
		}
		st := srv.status(id)
		return st.State == proto.StateCompliant && st.FCMRegistered
	})
	if st := srv.status(id); st.Connected {
		t.Fatal("a phone-mode agent holds an MQTT session")
	}

	editAt := time.Now()
	p := srv.setCamera(id, true)
	testkit.Eventually(t, 30*time.Second, "phone COMPLIANT at the new version", func() bool {
		st := srv.status(id)
		return st.State == proto.StateCompliant && st.AppliedVersion == p.Version
	})
	t.Logf("phone edit to COMPLIANT through FCM (polled, informational): %v", time.Since(editAt))

	msgs := fake.ForToken("phone-token-1")
	if len(msgs) != 1 {
		t.Fatalf("fake FCM got %d messages for the phone, want 1: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	if len(m.Data) != 2 || m.Data["type"] != "policy_changed" || m.Data["version"] != "2" {
		t.Fatalf("FCM data = %v, want exactly type=policy_changed version=2", m.Data)
	}
	if m.Notification != nil || m.Android == nil || m.Android.Priority != "high" || m.Android.CollapseKey != "policy_changed" || m.Android.TTL != 10*time.Minute {
		t.Fatalf("FCM message shape: notification=%s android=%+v", m.Notification, m.Android)
	}
	if m.Project != "doorbell-test" || m.Authorization != "" {
		t.Fatalf("project %q, authorization %q: want doorbell-test and none (endpoint without credentials)", m.Project, m.Authorization)
	}

	// FCM says the token is dead: the server deletes it.
	fake.FailToken("phone-token-1", fcmtest.Unregistered, -1)
	srv.setCamera(id, false)
	testkit.Eventually(t, 30*time.Second, "dead token deleted", func() bool { return !srv.status(id).FCMRegistered })
	if st := srv.status(id); st.State != proto.StateStale {
		t.Fatalf("without a working doorbell the phone should be STALE until its periodic sync, got %s", st.State)
	}

	// The app gets a new token (onNewToken): registered at once, and the
	// doorbell works again.
	ph.newToken(t, "phone-token-2")
	if !srv.status(id).FCMRegistered {
		t.Fatal("new token not registered")
	}
	p = srv.setCamera(id, true)
	testkit.Eventually(t, 30*time.Second, "phone COMPLIANT through the new token", func() bool {
		st := srv.status(id)
		return st.State == proto.StateCompliant && st.AppliedVersion == p.Version
	})
	if n := len(fake.ForToken("phone-token-2")); n != 1 {
		t.Fatalf("new token got %d doorbells, want 1", n)
	}
}

// TestRungOnBoth: a device with an FCM token and an MQTT session is rung on
// both channels, and the agent applies and reports the version once.
func TestRungOnBoth(t *testing.T) {
	fake := fcmtest.NewServer(t)
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0",
		"--fcm-project", "doorbell-test", "--fcm-endpoint", fake.URL)
	type sync struct {
		version int64
		skipped bool
	}
	syncs := make(chan sync, 64)
	a, err := agent.New(agent.Config{
		ServerURL: srv.url, ServerPin: srv.pin, EnrollToken: srv.enroll, Interval: time.Hour,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: agent.NewFileIDStore(t.TempDir()),
		OnSync: func(r agent.SyncResult) {
			if r.Err == nil {
				syncs <- sync{r.PolicyVersion, r.Skipped}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.OnMessage(func(m fcmtest.Message) { a.OnPush(m.Data) })
	if err := a.SetPushToken("kiosk-token"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var id string
	testkit.Eventually(t, 30*time.Second, "kiosk connected, registered and COMPLIANT", func() bool {
		if id = a.DeviceID(); id == "" {
			return false
		}
		st := srv.status(id)
		return st.State == proto.StateCompliant && st.Connected && st.FCMRegistered
	})
	p := srv.setCamera(id, true)
	testkit.Eventually(t, 30*time.Second, "kiosk COMPLIANT at the new version", func() bool {
		st := srv.status(id)
		return st.State == proto.StateCompliant && st.AppliedVersion == p.Version
	})
	fake.WaitDelivered(t, 1)
	// Both bells rang. One more sync, serialised after any the bells
	// caused, then count the real reports of the new version.
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	reports := 0
	for {
		select {
		case s := <-syncs:
			if s.version == p.Version && !s.skipped {
				reports++
			}
			continue
		default:
		}
		break
	}
	if reports != 1 {
		t.Fatalf("the agent reported version %d %d times, want exactly once", p.Version, reports)
	}
}
