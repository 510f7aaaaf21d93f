package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// receiver is an httptest webhook receiver that verifies signatures and
// answers each delivery with the next status from answers (200 after).
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	answers []int
	got     chan WebhookEvent
	badSig  int
}

func newReceiver(t *testing.T, secret string, answers ...int) *receiver {
	r := &receiver{t: t, answers: answers, got: make(chan WebhookEvent, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		if req.Header.Get(SignatureHeader) != Sign(secret, body) || req.Header.Get(EventHeader) != EventStateChanged {
			r.badSig++
			r.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		status := 200
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		if status == 200 {
			var ev WebhookEvent
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Errorf("webhook body %s: %v", body, err)
			}
			r.got <- ev
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) next() WebhookEvent {
	r.t.Helper()
	select {
	case ev := <-r.got:
		return ev
	case <-time.After(10 * time.Second): // failure guard only
		r.t.Fatal("no webhook delivery")
		return WebhookEvent{}
	}
}

func TestSignKnownAnswer(t *testing.T) {
	// HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style known answer.
	got := Sign("key", []byte("The quick brown fox jumps over the lazy dog"))
	if want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestWebhookDeliversSignedWithRetries(t *testing.T) {
	const secret = "s3cret"
	rcv := newReceiver(t, secret, 503, 500) // two failures, then success
	wh, err := NewWebhook(WebhookConfig{URL: rcv.srv.URL, Secret: secret, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); wh.Run(ctx) }()
	defer func() { cancel(); <-done }()

	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	wh.Notify(
		proto.Transition{DeviceID: "d1", From: proto.StateCompliant, To: proto.StateNonCompliant, At: at, Cause: proto.CauseReport},
		proto.Transition{DeviceID: "d2", From: proto.StateStale, To: proto.StateCompliant, At: at, Cause: proto.CauseReport},
	)
	first, second := rcv.next(), rcv.next()
	if first.Type != EventStateChanged || first.DeviceID != "d1" || first.To != proto.StateNonCompliant || !first.At.Equal(at) {
		t.Errorf("first event = %+v", first)
	}
	if second.DeviceID != "d2" {
		t.Errorf("events out of order: second = %+v", second)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.badSig != 0 || len(rcv.answers) != 0 {
		t.Errorf("bad signatures %d, unused failures %v", rcv.badSig, rcv.answers)
	}
}

func TestWebhookGivesUpOnClientErrorAndWrongSecret(t *testing.T) {
	rcv := newReceiver(t, "right")
	wh, err := NewWebhook(WebhookConfig{URL: rcv.srv.URL, Secret: "wrong", Backoff: time.Millisecond, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	// A 401 is not retryable: one attempt.
	retry, err := wh.post(context.Background(), EventStateChanged, []byte(`{}`))
	if err == nil || retry {
		t.Fatalf("post with a wrong secret: retry=%v err=%v", retry, err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.badSig != 1 {
		t.Errorf("receiver saw %d bad signatures, want 1", rcv.badSig)
	}
}

func TestWebhookNeverBlocks(t *testing.T) {
	wh, err := NewWebhook(WebhookConfig{URL: "http://127.0.0.1:1/hook", Secret: "s", QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody runs the queue: Notify must still return at once.
	wh.Notify(make([]proto.Transition, 5)...)
	if wh.Dropped() != 3 {
		t.Errorf("dropped %d, want 3", wh.Dropped())
	}
}

func TestNewWebhookRefusals(t *testing.T) {
	tests := []struct{ name, url, secret string }{
		{"no secret", "http://example.com/hook", ""},
		{"not http", "ftp://example.com/hook", "s"},
		{"no host", "http:///hook", "s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewWebhook(WebhookConfig{URL: tt.url, Secret: tt.secret}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
