package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/doorbell-mdm/doorbell/bridge/fcmtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

// deadline bounds every wait in these tests; it only fires when a test is
// broken.
const deadline = 10 * time.Second

// top and bottom are the retry backoff's Rand at either end of its jitter:
// the full ceiling, and no wait at all.
func top() float64    { return 1 }
func bottom() float64 { return 0 }

// newFakeClock returns the shared fake clock; unless block, every wait
// jumps the clock forward and fires at once.
func newFakeClock(block bool) *testkit.Clock {
	c := testkit.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	c.AutoAdvance(!block)
	return c
}

// backoffStarted waits until the bell waits out a retry.
func backoffStarted(t *testing.T, h *harness) {
	t.Helper()
	h.clock.WaitTimer(t, deadline, 0, math.MaxInt64)
}

// logSink sends logs to t.Log and keeps them for assertions.
type logSink struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Log(strings.TrimSpace(string(p)))
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type settledRing struct {
	ring Ring
	err  error
}

// harness is an FCMBell wired to a fake FCM server through the real SDK.
type harness struct {
	t       *testing.T
	srv     *fcmtest.Server
	bell    *FCMBell
	clock   *testkit.Clock
	logs    *logSink
	settled chan settledRing
	invalid chan [2]string

	mu     sync.Mutex
	tokens []string
}

func newHarness(t *testing.T, block bool, mod func(*FCMConfig)) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		srv:     fcmtest.NewServer(t),
		clock:   newFakeClock(block),
		logs:    &logSink{t: t},
		settled: make(chan settledRing, 5000),
		invalid: make(chan [2]string, 100),
	}
	cfg := FCMConfig{
		ProjectID:   "doorbell-test",
		Endpoint:    h.srv.URL,
		Logger:      slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxRetries:  3,
		BaseBackoff: time.Second,
		OnInvalidToken: func(deviceID, token string) {
			h.invalid <- [2]string{deviceID, token}
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := NewFCMBell(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewFCMBell: %v", err)
	}
	b.now, b.after = h.clock.Now, h.clock.After
	b.onSettled = func(r Ring, err error) { h.settled <- settledRing{r, err} }
	h.bell = b
	// Registered after the server's cleanup, so it runs before it: Run
	// stops first. No token may ever appear in full in the logs.
	t.Cleanup(func() {
		logs := h.logs.String()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, tok := range h.tokens {
			if strings.Contains(logs, tok) {
				t.Errorf("logs contain the full token %q", tok)
			}
		}
	})
	return h
}

// ring rings through the bell and remembers the tokens.
func (h *harness) ring(rings ...Ring) {
	h.mu.Lock()
	for _, r := range rings {
		if r.FCMToken != "" {
			h.tokens = append(h.tokens, r.FCMToken)
		}
	}
	h.mu.Unlock()
	h.bell.Ring(rings...)
}

// run starts Run; it is stopped, and must return nil, when the test ends.
// The returned cancel stops it early; done yields Run's result.
func (h *harness) run() (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		ch <- h.bell.Run(ctx)
		close(ch) // a second receive, after the test's own, returns at once
	}()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err, ok := <-ch:
			if ok && err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(deadline):
			h.t.Errorf("Run did not return after cancel")
		}
	})
	return cancel, ch
}

// waitSettled waits for n rings to be delivered or given up.
func (h *harness) waitSettled(n int) []settledRing {
	h.t.Helper()
	var out []settledRing
	timeout := time.After(deadline)
	for len(out) < n {
		select {
		case s := <-h.settled:
			out = append(out, s)
		case <-timeout:
			h.t.Fatalf("%d of %d rings settled", len(out), n)
		}
	}
	return out
}

func token(name string) string {
	return fmt.Sprintf("%s-%s", name, strings.Repeat("x", 24))
}

func TestNewFCMBellConfig(t *testing.T) {
	srv := fcmtest.NewServer(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     FCMConfig
		wantErr string // empty: no error
	}{
		{name: "endpoint without credentials", cfg: FCMConfig{ProjectID: "p", Endpoint: srv.URL}},
		{name: "endpoint with /v1", cfg: FCMConfig{ProjectID: "p", Endpoint: srv.Endpoint(), TTL: time.Minute, MaxRetries: -1}},
		{name: "missing project", cfg: FCMConfig{Endpoint: srv.URL}, wantErr: "ProjectID is required"},
		{name: "neither credentials nor endpoint", cfg: FCMConfig{ProjectID: "p"}, wantErr: "CredentialsFile is required"},
		{name: "missing credentials file", cfg: FCMConfig{ProjectID: "p", CredentialsFile: filepath.Join(dir, "nope.json")}, wantErr: "nope.json"},
		{name: "credentials file not JSON", cfg: FCMConfig{ProjectID: "p", CredentialsFile: garbage}, wantErr: "garbage.json"},
		{name: "HTTP client with credentials", cfg: FCMConfig{ProjectID: "p", CredentialsFile: garbage, HTTPClient: &http.Client{}}, wantErr: "cannot be combined"},
		{name: "negative TTL", cfg: FCMConfig{ProjectID: "p", Endpoint: srv.URL, TTL: -time.Second}, wantErr: "TTL"},
		{name: "TTL beyond FCM's limit", cfg: FCMConfig{ProjectID: "p", Endpoint: srv.URL, TTL: 29 * 24 * time.Hour}, wantErr: "TTL"},
		{name: "negative backoff", cfg: FCMConfig{ProjectID: "p", Endpoint: srv.URL, BaseBackoff: -time.Second}, wantErr: "BaseBackoff"},
		{name: "endpoint without scheme", cfg: FCMConfig{ProjectID: "p", Endpoint: "127.0.0.1:9999"}, wantErr: "not an http(s) URL"},
		{name: "endpoint not http", cfg: FCMConfig{ProjectID: "p", Endpoint: "ftp://127.0.0.1:9999"}, wantErr: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewFCMBell(context.Background(), tt.cfg)
			if tt.wantErr == "" {
				if err != nil || b == nil {
					t.Fatalf("NewFCMBell = %v, %v; want a bell", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewFCMBell error = %v; want one containing %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestFCMEndpoint(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "bare host gets /v1", in: "http://127.0.0.1:9999", want: "http://127.0.0.1:9999/v1"},
		{name: "root path gets /v1", in: "http://127.0.0.1:9999/", want: "http://127.0.0.1:9999/v1"},
		{name: "explicit /v1 kept", in: "https://fcm.googleapis.com/v1", want: "https://fcm.googleapis.com/v1"},
		{name: "trailing slash trimmed", in: "http://h:1/v1/", want: "http://h:1/v1"},
		{name: "other path kept", in: "http://h:1/fcm/v1", want: "http://h:1/fcm/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fcmEndpoint(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("fcmEndpoint(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFCMMessageShape(t *testing.T) {
	tests := []struct {
		name           string
		ttl            time.Duration
		endpointSuffix string // appended to the server's bare URL
		wantTTL        string
	}{
		{name: "default TTL, bare endpoint", wantTTL: "3600s"},
		{name: "custom TTL, /v1 endpoint", ttl: 90 * time.Second, endpointSuffix: "/v1", wantTTL: "90s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false, func(c *FCMConfig) {
				c.TTL = tt.ttl
				c.Endpoint += tt.endpointSuffix
			})
			tok := token("shape")
			h.ring(Ring{DeviceID: "dev-1", Version: 7, FCMToken: tok})
			h.run()
			if s := h.waitSettled(1); s[0].err != nil {
				t.Fatalf("ring not delivered: %v", s[0].err)
			}
			got := h.srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server received %d messages, want 1", len(got))
			}
			m := got[0]
			if m.Project != "doorbell-test" || m.Token != tok || m.ValidateOnly || m.Authorization != "" {
				t.Errorf("project %q token %q validateOnly %v authorization %q; want doorbell-test, %q, false, none",
					m.Project, m.Token, m.ValidateOnly, m.Authorization, tok)
			}
			wantData := map[string]string{"type": "policy_changed", "version": "7"}
			if !mapsEqual(m.Data, wantData) {
				t.Errorf("data = %v, want %v", m.Data, wantData)
			}
			if m.Notification != nil {
				t.Errorf("notification = %s, want none", m.Notification)
			}
			if m.Android == nil {
				t.Fatal("no android config")
			}
			if m.Android.Priority != "high" || m.Android.CollapseKey != "policy_changed" || m.Android.TTLRaw != tt.wantTTL {
				t.Errorf("android = priority %q collapse key %q ttl %q; want high, policy_changed, %q",
					m.Android.Priority, m.Android.CollapseKey, m.Android.TTLRaw, tt.wantTTL)
			}
			// Nothing else on the wire: no notification, no policy content.
			if keys := jsonKeys(t, m.Raw); !slices.Equal(keys, []string{"android", "data", "token"}) {
				t.Errorf("message keys = %v, want [android data token]", keys)
			}
			if keys := jsonKeys(t, m.Android.Raw); !slices.Equal(keys, []string{"collapse_key", "priority", "ttl"}) {
				t.Errorf("android keys = %v, want [collapse_key priority ttl]", keys)
			}
			if s := h.bell.Stats(); s != (FCMStats{Sent: 1, Batches: 1}) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func jsonKeys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestFCMCoalescing(t *testing.T) {
	tA, tB, t2 := token("a"), token("b"), token("two")
	tests := []struct {
		name  string
		rings []Ring
		want  map[string]string // token -> version delivered
	}{
		{
			name: "highest version wins",
			rings: []Ring{
				{DeviceID: "d1", Version: 1, FCMToken: tA}, {DeviceID: "d1", Version: 3, FCMToken: tA},
				{DeviceID: "d1", Version: 2, FCMToken: tA}, {DeviceID: "d2", Version: 1, FCMToken: t2},
			},
			want: map[string]string{tA: "3", t2: "1"},
		},
		{
			name:  "later ring wins a tie",
			rings: []Ring{{DeviceID: "d1", Version: 2, FCMToken: tA}, {DeviceID: "d1", Version: 2, FCMToken: tB}},
			want:  map[string]string{tB: "2"},
		},
		{
			name:  "older version does not replace the new token",
			rings: []Ring{{DeviceID: "d1", Version: 3, FCMToken: tB}, {DeviceID: "d1", Version: 2, FCMToken: tA}},
			want:  map[string]string{tB: "3"},
		},
		{
			name:  "empty token skipped",
			rings: []Ring{{DeviceID: "d1", Version: 1}, {DeviceID: "d2", Version: 1, FCMToken: t2}},
			want:  map[string]string{t2: "1"},
		},
		{
			name:  "empty token does not replace a queued ring",
			rings: []Ring{{DeviceID: "d1", Version: 1, FCMToken: tA}, {DeviceID: "d1", Version: 2}},
			want:  map[string]string{tA: "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false, nil)
			h.ring(tt.rings...) // queued before Run: one batch
			h.run()
			h.waitSettled(len(tt.want))
			got := map[string]string{}
			for _, m := range h.srv.Messages() {
				if _, dup := got[m.Token]; dup {
					t.Errorf("token %s sent twice", m.Token[:4])
				}
				got[m.Token] = m.Data["version"]
			}
			if !mapsEqual(got, tt.want) {
				t.Errorf("sent %v, want %v", got, tt.want)
			}
			if s := h.bell.Stats(); s.Batches != 1 || s.Sent != uint64(len(tt.want)) {
				t.Errorf("stats = %+v, want 1 batch and %d sent", s, len(tt.want))
			}
		})
	}
}

// recordingSender records the size of every SendEach call.
type recordingSender struct {
	inner fcmSender
	mu    sync.Mutex
	sizes []int
}

func (s *recordingSender) SendEach(ctx context.Context, msgs []*messaging.Message) (*messaging.BatchResponse, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(msgs))
	s.mu.Unlock()
	return s.inner.SendEach(ctx, msgs)
}

func TestFCMBatching(t *testing.T) {
	const n = 1201
	h := newHarness(t, false, nil)
	rec := &recordingSender{inner: h.bell.sender}
	h.bell.sender = rec
	rings := make([]Ring, n)
	for i := range rings {
		rings[i] = Ring{DeviceID: fmt.Sprintf("dev-%d", i), Version: 1, FCMToken: token(fmt.Sprintf("t%d", i))}
	}
	h.ring(rings...)
	h.run()
	h.waitSettled(n)

	rec.mu.Lock()
	sizes := slices.Clone(rec.sizes)
	rec.mu.Unlock()
	total := 0
	per := 500 / DefaultFCMParallel // the batches in flight share SendEach's 500
	for _, s := range sizes {
		if s > per {
			t.Errorf("a SendEach call carried %d messages, more than %d", s, per)
		}
		total += s
	}
	calls := (n + per - 1) / per
	if len(sizes) != calls || total != n {
		t.Errorf("SendEach calls = %v; want %d calls carrying %d messages", sizes, calls, n)
	}
	tokens := map[string]bool{}
	for _, m := range h.srv.Delivered() {
		tokens[m.Token] = true
	}
	if len(tokens) != n {
		t.Errorf("%d distinct tokens delivered, want %d", len(tokens), n)
	}
	if s := h.bell.Stats(); s != (FCMStats{Sent: n, Batches: uint64(calls)}) {
		t.Errorf("stats = %+v", s)
	}
}

// flakySender fails its first calls as a whole, as SendEach does before
// sending anything, then delegates.
type flakySender struct {
	inner fcmSender
	mu    sync.Mutex
	fails int
}

func (s *flakySender) SendEach(ctx context.Context, msgs []*messaging.Message) (*messaging.BatchResponse, error) {
	s.mu.Lock()
	fail := s.fails > 0
	s.fails--
	s.mu.Unlock()
	if fail {
		return nil, errors.New("messages must not be nil or empty")
	}
	return s.inner.SendEach(ctx, msgs)
}

func TestFCMWholeCallErrorRetried(t *testing.T) {
	h := newHarness(t, false, nil)
	h.bell.retry.Rand = top
	h.bell.sender = &flakySender{inner: h.bell.sender, fails: 1}
	t1, t2 := token("one"), token("two")
	h.ring(Ring{DeviceID: "d1", Version: 1, FCMToken: t1}, Ring{DeviceID: "d2", Version: 1, FCMToken: t2})
	h.run()
	for _, s := range h.waitSettled(2) {
		if s.err != nil {
			t.Errorf("%s: %v", s.ring.DeviceID, s.err)
		}
	}
	if got := len(h.srv.Messages()); got != 2 {
		t.Errorf("server received %d messages, want 2", got)
	}
	if got, want := h.clock.Waits(), []time.Duration{time.Second}; !slices.Equal(got, want) {
		t.Errorf("waits = %v, want %v", got, want)
	}
	if s := h.bell.Stats(); s != (FCMStats{Sent: 2, Retried: 2, Batches: 2}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestFCMFailures(t *testing.T) {
	tests := []struct {
		name       string
		failure    fcmtest.Failure
		times      int // -1: always
		maxRetries int // 0: the harness's 3
		ttl        time.Duration
		jitter     func() float64 // the retry's Rand; nil: top (the full ceiling)

		wantInvalid   bool
		wantDelivered bool
		wantRetryable bool // of the final error, when not delivered
		wantRequests  int  // for the failing token
		wantWaits     []time.Duration
		wantStats     FCMStats // for the failing device only; the good one adds Sent 1
	}{
		{
			name: "unregistered token reported, not retried", failure: fcmtest.Unregistered, times: -1,
			wantInvalid: true, wantRequests: 1, wantStats: FCMStats{InvalidTokens: 1},
		},
		{
			name: "invalid token reported, not retried", failure: fcmtest.InvalidToken, times: -1,
			wantInvalid: true, wantRequests: 1, wantStats: FCMStats{InvalidTokens: 1},
		},
		{
			name: "sender id mismatch dropped, token kept", failure: fcmtest.SenderIDMismatch, times: -1,
			wantRequests: 1, wantStats: FCMStats{Failed: 1},
		},
		{
			name: "429 honours Retry-After", failure: fcmtest.QuotaExceeded.WithRetryAfter(2 * time.Second), times: 1, jitter: bottom,
			wantDelivered: true, wantRequests: 2, wantWaits: []time.Duration{2 * time.Second}, wantStats: FCMStats{Sent: 1, Retried: 1},
		},
		{
			name: "503 with a Retry-After beyond the SDK's own limit", failure: fcmtest.Unavailable.WithRetryAfter(5 * time.Minute), times: 1,
			wantDelivered: true, wantRequests: 2, wantWaits: []time.Duration{5 * time.Minute}, wantStats: FCMStats{Sent: 1, Retried: 1},
		},
		{
			name: "503 without Retry-After is retried inside the SDK", failure: fcmtest.Unavailable, times: 1,
			wantDelivered: true, wantRequests: 2, wantStats: FCMStats{Sent: 1},
		},
		{
			name: "500 retried with backoff", failure: fcmtest.Internal, times: 1,
			wantDelivered: true, wantRequests: 2, wantWaits: []time.Duration{time.Second}, wantStats: FCMStats{Sent: 1, Retried: 1},
		},
		{
			name: "always 500 gives up after MaxRetries", failure: fcmtest.Internal, times: -1,
			wantRetryable: true, wantRequests: 4, wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
			wantStats: FCMStats{Failed: 1, Retried: 3},
		},
		{
			name: "always 503 gives up after MaxRetries", failure: fcmtest.Unavailable.WithRetryAfter(5 * time.Minute), times: -1,
			wantRetryable: true, wantRequests: 4, wantWaits: []time.Duration{5 * time.Minute, 5 * time.Minute, 5 * time.Minute},
			wantStats: FCMStats{Failed: 1, Retried: 3},
		},
		{
			name: "always 429: backoff grows past Retry-After", failure: fcmtest.QuotaExceeded.WithRetryAfter(time.Second), times: -1, maxRetries: 2,
			wantRetryable: true, wantRequests: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second},
			wantStats: FCMStats{Failed: 1, Retried: 2},
		},
		{
			name: "Retry-After beyond the TTL gives up", failure: fcmtest.QuotaExceeded.WithRetryAfter(2 * time.Hour), times: -1,
			wantRetryable: true, wantRequests: 1, wantStats: FCMStats{Failed: 1},
		},
		{
			name: "retries disabled", failure: fcmtest.Internal, times: 1, maxRetries: -1,
			wantRetryable: true, wantRequests: 1, wantStats: FCMStats{Failed: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false, func(c *FCMConfig) {
				if tt.maxRetries != 0 {
					c.MaxRetries = tt.maxRetries
				}
				c.TTL = tt.ttl
			})
			h.bell.retry.Rand = top
			if tt.jitter != nil {
				h.bell.retry.Rand = tt.jitter
			}
			bad, good := token("bad"), token("good")
			h.srv.FailToken(bad, tt.failure, tt.times)
			h.ring(Ring{DeviceID: "bad-dev", Version: 4, FCMToken: bad}, Ring{DeviceID: "good-dev", Version: 4, FCMToken: good})
			h.run()

			var badResult *settledRing
			for _, s := range h.waitSettled(2) {
				if s.ring.DeviceID == "bad-dev" {
					badResult = &s
				} else if s.err != nil {
					t.Errorf("good device: %v", s.err)
				}
			}
			switch {
			case tt.wantDelivered:
				if badResult.err != nil {
					t.Errorf("failing device: %v; want delivered", badResult.err)
				}
			default:
				var de *FCMDeliveryError
				if !errors.As(badResult.err, &de) {
					t.Fatalf("failing device: %v; want an *FCMDeliveryError", badResult.err)
				}
				if de.InvalidToken != tt.wantInvalid || (!tt.wantInvalid && de.Retryable != tt.wantRetryable) {
					t.Errorf("error %v: invalid token %v retryable %v; want %v, %v", de, de.InvalidToken, de.Retryable, tt.wantInvalid, tt.wantRetryable)
				}
			}

			select {
			case got := <-h.invalid:
				if !tt.wantInvalid {
					t.Errorf("OnInvalidToken(%s, …) called", got[0])
				} else if got != [2]string{"bad-dev", bad} {
					t.Errorf("OnInvalidToken(%q, %q), want (bad-dev, the bad token)", got[0], got[1])
				}
			default:
				if tt.wantInvalid {
					t.Error("OnInvalidToken not called")
				}
			}
			if len(h.invalid) != 0 {
				t.Errorf("OnInvalidToken called %d more times", len(h.invalid))
			}

			if got := len(h.srv.ForToken(bad)); got != tt.wantRequests {
				t.Errorf("failing token: %d requests, want %d", got, tt.wantRequests)
			}
			if got := len(h.srv.ForToken(good)); got != 1 {
				t.Errorf("good token: %d requests, want 1 (only failed messages are retried)", got)
			}
			if got := h.clock.Waits(); !slices.Equal(got, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tt.wantWaits)
			}
			want := tt.wantStats
			want.Sent++
			got := h.bell.Stats()
			got.Batches = 0
			if got != want {
				t.Errorf("stats = %+v, want %+v", got, want)
			}
		})
	}
}

func TestFCMRunStopsOnCancel(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares a state and returns once Run is in it.
		setup func(t *testing.T, h *harness)
	}{
		{name: "idle", setup: func(*testing.T, *harness) {}},
		{
			name: "waiting out a backoff",
			setup: func(t *testing.T, h *harness) {
				tok := token("busy")
				h.srv.FailToken(tok, fcmtest.QuotaExceeded.WithRetryAfter(2*time.Second), -1)
				h.ring(Ring{DeviceID: "d", Version: 1, FCMToken: tok})
				backoffStarted(t, h)
			},
		},
		{
			name: "inside the SDK's own retry wait",
			setup: func(t *testing.T, h *harness) {
				tok := token("sdk")
				// 60s is within the SDK's two-minute limit: it waits itself.
				h.srv.FailToken(tok, fcmtest.Unavailable.WithRetryAfter(time.Minute), -1)
				seen := make(chan struct{}, 10)
				h.srv.OnMessage(func(fcmtest.Message) { seen <- struct{}{} })
				h.ring(Ring{DeviceID: "d", Version: 1, FCMToken: tok})
				select {
				case <-seen:
				case <-time.After(deadline):
					t.Fatal("no request reached the server")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true, nil)
			cancel, done := h.run()
			tt.setup(t, h)
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return promptly after cancel")
			}
			if s := h.bell.Stats(); s.Failed != 0 || s.Sent != 0 {
				t.Errorf("stats = %+v: shutdown counted as an outcome", s)
			}
		})
	}
}

func TestFCMBackoffDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, true, nil) // backoffs never end
	slow, fresh := token("slow"), token("fresh")
	h.srv.FailToken(slow, fcmtest.Internal, -1)
	h.run()
	h.ring(Ring{DeviceID: "slow", Version: 1, FCMToken: slow})
	backoffStarted(t, h)
	h.ring(Ring{DeviceID: "fresh", Version: 1, FCMToken: fresh})
	got := h.srv.WaitDelivered(t, 1)
	if got[0].Token != fresh {
		t.Errorf("delivered %s…, want the fresh token", got[0].Token[:5])
	}
}

func TestFCMNewerRingReplacesRetry(t *testing.T) {
	h := newHarness(t, true, nil) // the retry of version 1 never comes due
	tok := token("dev")
	h.srv.FailToken(tok, fcmtest.Internal, 1)
	h.run()
	h.ring(Ring{DeviceID: "d", Version: 1, FCMToken: tok})
	backoffStarted(t, h)
	h.ring(Ring{DeviceID: "d", Version: 2, FCMToken: tok})
	got := h.srv.WaitDelivered(t, 1)
	if v := got[0].Data["version"]; v != "2" {
		t.Errorf("delivered version %s, want 2", v)
	}
	var versions []string
	for _, m := range h.srv.ForToken(tok) {
		versions = append(versions, fmt.Sprintf("%s:%d", m.Data["version"], m.Status))
	}
	if !slices.Equal(versions, []string{"1:500", "2:200"}) {
		t.Errorf("requests = %v, want [1:500 2:200]", versions)
	}
}

func TestFCMRunTwice(t *testing.T) {
	h := newHarness(t, false, nil)
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- h.bell.Run(ctx) }()
	}
	// Exactly one Run refuses at once; the other runs until cancelled.
	first := <-results
	if first == nil {
		t.Fatal("first Run to return returned nil before cancel; want an error")
	}
	cancel()
	if second := <-results; second != nil {
		t.Errorf("running Run = %v after cancel, want nil", second)
	}
}

func TestClassifyFCMError(t *testing.T) {
	srv := fcmtest.NewServer(t)
	app, err := firebase.NewApp(context.Background(), &firebase.Config{ProjectID: "p"},
		option.WithEndpoint(srv.Endpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	client, err := app.Messaging(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		failure        fcmtest.Failure
		wantInvalid    bool
		wantRetryable  bool
		wantRetryAfter time.Duration
	}{
		{name: "unregistered", failure: fcmtest.Unregistered, wantInvalid: true},
		{name: "invalid argument", failure: fcmtest.InvalidToken, wantInvalid: true},
		{name: "sender id mismatch", failure: fcmtest.SenderIDMismatch},
		{name: "quota exceeded", failure: fcmtest.QuotaExceeded.WithRetryAfter(2 * time.Second), wantRetryable: true, wantRetryAfter: 2 * time.Second},
		{name: "quota exceeded without Retry-After", failure: fcmtest.QuotaExceeded, wantRetryable: true},
		{name: "internal", failure: fcmtest.Internal, wantRetryable: true},
		{name: "unavailable beyond the SDK's retry limit", failure: fcmtest.Unavailable.WithRetryAfter(3 * time.Minute), wantRetryable: true, wantRetryAfter: 3 * time.Minute},
		{name: "bad gateway without a body code", failure: fcmtest.Failure{Status: http.StatusBadGateway}, wantRetryable: true},
		{name: "400 without an FCM error code is not a token verdict", failure: fcmtest.Failure{Status: http.StatusBadRequest, ErrorStatus: "INVALID_ARGUMENT"}},
		{name: "unauthenticated", failure: fcmtest.Failure{Status: http.StatusUnauthorized, ErrorStatus: "UNAUTHENTICATED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.FailNext(tt.failure, 1)
			_, sendErr := client.Send(context.Background(), &messaging.Message{Token: token("c"), Data: map[string]string{"k": "v"}})
			if sendErr == nil {
				t.Fatal("Send succeeded, want the scripted failure")
			}
			de := ClassifyFCMError(sendErr)
			if de.InvalidToken != tt.wantInvalid || de.Retryable != tt.wantRetryable || de.RetryAfter != tt.wantRetryAfter {
				t.Errorf("ClassifyFCMError(%v) = invalid %v retryable %v retry after %v; want %v %v %v",
					sendErr, de.InvalidToken, de.Retryable, de.RetryAfter, tt.wantInvalid, tt.wantRetryable, tt.wantRetryAfter)
			}
			if !errors.Is(de, sendErr) {
				t.Error("FCMDeliveryError does not unwrap to the SDK error")
			}
		})
	}

	t.Run("not SDK errors", func(t *testing.T) {
		if de := ClassifyFCMError(nil); de != nil {
			t.Errorf("ClassifyFCMError(nil) = %v, want nil", de)
		}
		if de := ClassifyFCMError(context.DeadlineExceeded); !de.Retryable {
			t.Error("a deadline is not retryable")
		}
		if de := ClassifyFCMError(errors.New("error while parsing response")); de.Retryable || de.InvalidToken {
			t.Errorf("an unknown error is classified %+v, want neither retryable nor invalid token", de)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Duration
	}{
		{name: "absent", in: "", want: 0},
		{name: "seconds", in: "2", want: 2 * time.Second},
		{name: "padded", in: " 30 ", want: 30 * time.Second},
		{name: "negative", in: "-5", want: 0},
		{name: "huge is capped", in: "99999999999", want: fcmMaxTTL},
		{name: "HTTP date", in: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "past date", in: now.Add(-time.Hour).Format(http.TimeFormat), want: 0},
		{name: "garbage", in: "soon", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTokenPrefix(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "empty", in: "", want: "…"},
		{name: "short shows half", in: "abcd", want: "ab…"},
		{name: "long shows eight", in: "abcdefghijklmnopqrstuvwxyz", want: "abcdefgh…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tokenPrefix(tt.in); got != tt.want {
				t.Errorf("tokenPrefix(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
