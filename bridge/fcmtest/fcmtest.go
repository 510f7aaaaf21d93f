// Package fcmtest is a fake Firebase Cloud Messaging HTTP v1 server for tests.
// It records what the real firebase SDK sends and answers as FCM does,
// including scripted failures the SDK classifies exactly like FCM's own.
package fcmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// WaitTimeout bounds WaitDelivered. It is a deadline for a broken test, not a
// synchronisation delay.
const WaitTimeout = 10 * time.Second

// maxBody is the largest request body the fake accepts; FCM's own limit on a
// message is 4 KiB of payload, so this is generous.
const maxBody = 1 << 20

// fcmErrorType is the @type of the FCM-specific error detail. The SDK reads
// errorCode from the detail with exactly this type.
const fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

// Message is one request the fake received on messages:send.
type Message struct {
	// Project is the project id from the request path.
	Project string
	// Token, Topic and Condition are the message's target; FCM requires
	// exactly one.
	Token     string
	Topic     string
	Condition string
	// Data is the message's data payload.
	Data map[string]string
	// Notification is the raw notification object, nil when absent.
	Notification json.RawMessage
	// Android is the Android config, nil when absent.
	Android *Android
	// ValidateOnly is the request's validate_only flag (a dry run).
	ValidateOnly bool
	// Raw is the "message" object exactly as received, for assertions on
	// its full shape.
	Raw json.RawMessage
	// Authorization is the request's Authorization header, empty when the
	// client sent none.
	Authorization string
	// Status is the HTTP status the fake answered.
	Status int
	// Name is the message name answered on success
	// ("projects/<p>/messages/<n>"), empty on failure.
	Name string
}

// Android is the part of the Android config a doorbell uses.
type Android struct {
	Priority    string
	CollapseKey string
	// TTL is the parsed ttl; TTLRaw is the wire form ("3600s"), empty when
	// the message had no ttl.
	TTL    time.Duration
	TTLRaw string
	// Raw is the "android" object exactly as received.
	Raw json.RawMessage
}

// Failure is a scripted error answer in FCM's HTTP v1 error format.
type Failure struct {
	// Status is the HTTP status code.
	Status int
	// ErrorStatus is the google.rpc status name, e.g. "NOT_FOUND".
	ErrorStatus string
	// ErrorCode is the FcmError detail's errorCode, e.g. "UNREGISTERED";
	// empty sends no FcmError detail.
	ErrorCode string
	// Message is the human-readable message.
	Message string
	// RetryAfter is the Retry-After header value, empty for none.
	RetryAfter string
}

// WithRetryAfter returns a copy of f that sends Retry-After as whole seconds.
func (f Failure) WithRetryAfter(d time.Duration) Failure {
	f.RetryAfter = strconv.FormatInt(int64(d/time.Second), 10)
	return f
}

// The answers real FCM gives, as the SDK expects them.
var (
	// Unregistered: the token is no longer valid (app uninstalled, token
	// expired). messaging.IsUnregistered reports true.
	Unregistered = Failure{Status: http.StatusNotFound, ErrorStatus: "NOT_FOUND", ErrorCode: "UNREGISTERED",
		Message: "Requested entity was not found."}
	// InvalidToken: the token is not a valid FCM registration token.
	// messaging.IsInvalidArgument reports true.
	InvalidToken = Failure{Status: http.StatusBadRequest, ErrorStatus: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT",
		Message: "The registration token is not a valid FCM registration token"}
	// QuotaExceeded: the sending rate is too high. Add WithRetryAfter as FCM
	// usually does. messaging.IsQuotaExceeded reports true.
	QuotaExceeded = Failure{Status: http.StatusTooManyRequests, ErrorStatus: "RESOURCE_EXHAUSTED", ErrorCode: "QUOTA_EXCEEDED",
		Message: "Quota exceeded for quota metric 'Send requests'."}
	// Unavailable: FCM is overloaded. messaging.IsUnavailable reports true.
	// Note the SDK itself retries a 503 up to four times (honouring a
	// Retry-After of at most two minutes) before returning it.
	Unavailable = Failure{Status: http.StatusServiceUnavailable, ErrorStatus: "UNAVAILABLE", ErrorCode: "UNAVAILABLE",
		Message: "The service is currently unavailable."}
	// Internal: an unknown internal error. messaging.IsInternal reports true.
	Internal = Failure{Status: http.StatusInternalServerError, ErrorStatus: "INTERNAL", ErrorCode: "INTERNAL",
		Message: "Internal error encountered."}
	// SenderIDMismatch: the token belongs to another sender (project).
	// messaging.IsSenderIDMismatch reports true.
	SenderIDMismatch = Failure{Status: http.StatusForbidden, ErrorStatus: "PERMISSION_DENIED", ErrorCode: "SENDER_ID_MISMATCH",
		Message: "SenderId mismatch"}
)

// script is a failure answered a limited (times > 0) or unlimited (times < 0)
// number of times.
type script struct {
	f     Failure
	times int
}

// Server is a fake FCM HTTP v1 server on a local port. It is safe for
// concurrent use; the SDK's SendEach sends one request per message, many at
// once.
type Server struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:34567".
	URL string

	srv *httptest.Server

	mu        sync.Mutex
	msgs      []Message
	delivered int
	byToken   map[string]*script
	next      []script
	onMessage []func(Message)
	changed   chan struct{} // closed and replaced whenever msgs grows
	seq       int
	hang      map[string]int // token -> requests still to hang (<0: all)
	hanging   int            // requests hanging right now
	hangDone  chan struct{}  // closed by ReleaseHung
	every     int            // FailEvery: answer every every-th request with everyF
	everyF    Failure
	requests  int
}

// NewServer starts a fake FCM server, closed when t's test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		byToken:  make(map[string]*script),
		changed:  make(chan struct{}),
		hang:     make(map[string]int),
		hangDone: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.handleSend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Failure{Status: http.StatusNotFound, ErrorStatus: "NOT_FOUND",
			Message: fmt.Sprintf("fcmtest: no endpoint %s %s (does the client's endpoint end in /v1?)", r.Method, r.URL.Path)})
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.ReleaseHung()
		s.srv.Close()
	})
	return s
}

// HangToken makes the next times requests for token (every one when times
// < 0) hang without an answer until the client gives up, ReleaseHung is
// called or the server closes; a hung request is not recorded. It stands
// for an FCM connection that stalls.
func (s *Server) HangToken(token string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang[token] = times
}

// Hanging returns how many requests hang right now.
func (s *Server) Hanging() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging
}

// ReleaseHung ends every hanging request (each then answers 503) and stops
// hanging new ones.
func (s *Server) ReleaseHung() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.hangDone:
	default:
		close(s.hangDone)
	}
	clear(s.hang)
}

// FailEvery answers every n-th request from now on (counting every request,
// whatever its token) with f: n = 2 fails half of them. n <= 0 stops it.
// Per-token scripts take precedence.
func (s *Server) FailEvery(f Failure, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.every, s.everyF, s.requests = max(n, 0), f, 0
}

// Endpoint is the base URL of the fake's v1 API, the value for the SDK's
// option.WithEndpoint (the SDK appends "/projects/<p>/messages:send").
func (s *Server) Endpoint() string { return s.URL + "/v1" }

// FailToken answers the next times requests for token with f; times < 0
// means every request from now on. It takes precedence over FailNext.
func (s *Server) FailToken(token string, f Failure, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byToken[token] = &script{f: f, times: times}
}

// FailNext answers the next n requests, whatever their token, with f. Calls
// queue up: FailNext(a, 1); FailNext(b, 1) answers a, then b.
func (s *Server) FailNext(f Failure, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > 0 {
		s.next = append(s.next, script{f: f, times: n})
	}
}

// OnMessage registers fn to be called with every received message, after it
// is recorded and before the answer is sent. fn runs on the request's
// goroutine, concurrently with other requests, and must not block for long.
func (s *Server) OnMessage(fn func(Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onMessage = append(s.onMessage, fn)
}

// Messages returns a copy of every message received so far, in arrival
// order, whatever the answer.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filter(func(Message) bool { return true })
}

// Delivered returns a copy of the messages answered with success, in
// arrival order.
func (s *Server) Delivered() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filter(func(m Message) bool { return m.Status == http.StatusOK })
}

// ForToken returns a copy of every message received for token, whatever
// the answer.
func (s *Server) ForToken(token string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filter(func(m Message) bool { return m.Token == token })
}

// WaitDelivered blocks until at least n messages were answered with success
// and returns the delivered messages. It fails the test after WaitTimeout.
// Call it from the test's goroutine.
func (s *Server) WaitDelivered(t testing.TB, n int) []Message {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, changed := s.delivered, s.changed
		s.mu.Unlock()
		if got >= n {
			return s.Delivered()
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("fcmtest: %d of %d messages delivered after %v", got, n, WaitTimeout)
			return nil
		}
	}
}

// filter copies the matching messages; s.mu must be held.
func (s *Server) filter(keep func(Message) bool) []Message {
	var out []Message
	for _, m := range s.msgs {
		if keep(m) {
			out = append(out, m.clone())
		}
	}
	return out
}

func (m Message) clone() Message {
	c := m
	if m.Data != nil {
		c.Data = make(map[string]string, len(m.Data))
		for k, v := range m.Data {
			c.Data[k] = v
		}
	}
	c.Notification = cloneRaw(m.Notification)
	c.Raw = cloneRaw(m.Raw)
	if m.Android != nil {
		a := *m.Android
		a.Raw = cloneRaw(m.Android.Raw)
		c.Android = &a
	}
	return c
}

func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return append(json.RawMessage(nil), r...)
}

// sendRequest is the body of messages:send, as the SDK writes it.
type sendRequest struct {
	ValidateOnly bool            `json:"validate_only"`
	Message      json.RawMessage `json:"message"`
}

type wireMessage struct {
	Token        string            `json:"token"`
	Topic        string            `json:"topic"`
	Condition    string            `json:"condition"`
	Data         map[string]string `json:"data"`
	Notification json.RawMessage   `json:"notification"`
	Android      json.RawMessage   `json:"android"`
}

type wireAndroid struct {
	Priority    string `json:"priority"`
	CollapseKey string `json:"collapse_key"`
	TTL         string `json:"ttl"`
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	m := Message{
		Project:       r.PathValue("project"),
		Authorization: r.Header.Get("Authorization"),
	}
	var fail *Failure
	if err := parse(r, &m); err != nil {
		fail = &Failure{Status: http.StatusBadRequest, ErrorStatus: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT",
			Message: "fcmtest: " + err.Error()}
	}

	if fail == nil && s.hangs(r, m.Token) {
		writeError(w, Unavailable)
		return
	}

	s.mu.Lock()
	if fail == nil {
		fail = s.scripted(m.Token)
	}
	if fail != nil {
		m.Status = fail.Status
	} else {
		s.seq++
		m.Status = http.StatusOK
		m.Name = fmt.Sprintf("projects/%s/messages/%d", m.Project, s.seq)
		s.delivered++
	}
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	hooks := slices.Clone(s.onMessage)
	s.mu.Unlock()

	for _, fn := range hooks {
		fn(m.clone())
	}
	if fail != nil {
		writeError(w, *fail)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(map[string]string{"name": m.Name})
}

// parse fills m from the request body.
func parse(r *http.Request, m *Message) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	var req sendRequest
	if err := json.Unmarshal(body, &req); err != nil {
		m.Raw = body
		return fmt.Errorf("decoding request: %w", err)
	}
	m.ValidateOnly = req.ValidateOnly
	m.Raw = req.Message
	if len(req.Message) == 0 {
		return fmt.Errorf("message is required")
	}
	var wm wireMessage
	if err := json.Unmarshal(req.Message, &wm); err != nil {
		return fmt.Errorf("decoding message: %w", err)
	}
	m.Token, m.Topic, m.Condition = wm.Token, wm.Topic, wm.Condition
	m.Data = wm.Data
	m.Notification = wm.Notification
	if wm.Android != nil {
		var wa wireAndroid
		if err := json.Unmarshal(wm.Android, &wa); err != nil {
			return fmt.Errorf("decoding message.android: %w", err)
		}
		a := &Android{Priority: wa.Priority, CollapseKey: wa.CollapseKey, TTLRaw: wa.TTL, Raw: wm.Android}
		if wa.TTL != "" {
			ttl, err := time.ParseDuration(wa.TTL)
			if err != nil || ttl < 0 {
				return fmt.Errorf("message.android.ttl %q is not a duration in seconds", wa.TTL)
			}
			a.TTL = ttl
		}
		m.Android = a
	}
	targets := 0
	for _, t := range []string{wm.Token, wm.Topic, wm.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return fmt.Errorf("exactly one of message.token, message.topic, message.condition is required")
	}
	return nil
}

// hangs hangs the request when token is scripted to, until the client
// goes away or ReleaseHung; it reports whether it hung.
func (s *Server) hangs(r *http.Request, token string) bool {
	s.mu.Lock()
	n, ok := s.hang[token]
	if !ok || n == 0 {
		s.mu.Unlock()
		return false
	}
	if n > 0 {
		s.hang[token] = n - 1
	}
	s.hanging++
	done := s.hangDone
	s.mu.Unlock()
	select {
	case <-r.Context().Done():
	case <-done:
	}
	s.mu.Lock()
	s.hanging--
	s.mu.Unlock()
	return true
}

// scripted returns the scripted failure for this request, if any, and
// consumes one use of it; s.mu must be held.
func (s *Server) scripted(token string) *Failure {
	if sc, ok := s.byToken[token]; ok && sc.times != 0 {
		if sc.times > 0 {
			sc.times--
		}
		f := sc.f
		return &f
	}
	if s.every > 0 {
		s.requests++
		if s.requests%s.every == 0 {
			f := s.everyF
			return &f
		}
	}
	if len(s.next) > 0 {
		f := s.next[0].f
		s.next[0].times--
		if s.next[0].times == 0 {
			s.next = s.next[1:]
		}
		return &f
	}
	return nil
}

// writeError writes f in the FCM v1 error format the SDK parses: the
// google.rpc status in error.status and the FcmError detail's errorCode.
func writeError(w http.ResponseWriter, f Failure) {
	type detail struct {
		Type      string `json:"@type"`
		ErrorCode string `json:"errorCode"`
	}
	var body struct {
		Error struct {
			Code    int      `json:"code"`
			Message string   `json:"message"`
			Status  string   `json:"status"`
			Details []detail `json:"details,omitempty"`
		} `json:"error"`
	}
	body.Error.Code = f.Status
	body.Error.Message = f.Message
	body.Error.Status = f.ErrorStatus
	if f.ErrorCode != "" {
		body.Error.Details = []detail{{Type: fcmErrorType, ErrorCode: f.ErrorCode}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	w.WriteHeader(f.Status)
	json.NewEncoder(w).Encode(body)
}
