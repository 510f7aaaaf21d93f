package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Defaults for the zero values of FCMConfig.
const (
	// DefaultFCMTTL is how long FCM keeps an undelivered doorbell. An older
	// doorbell is worthless: the agent's periodic sync has run by then.
	DefaultFCMTTL = time.Hour
	// DefaultFCMMaxRetries is how many times a failed message is retried.
	DefaultFCMMaxRetries = 5
	// DefaultFCMBaseBackoff is the ceiling of the first retry's delay; it
	// doubles with each retry.
	DefaultFCMBaseBackoff = time.Second
	// DefaultFCMSendTimeout bounds one SendEach call, the SDK's own retries
	// included: a request still unanswered then is abandoned and retried
	// like any other transient failure.
	DefaultFCMSendTimeout = 30 * time.Second
	// DefaultFCMParallel is how many batches are in flight at once, so
	// one slow or hung batch does not hold the doorbells of the others.
	// The 500 messages SendEach may carry are shared among them: 4 batches
	// of 125, never more than 500 requests at once.
	DefaultFCMParallel = 4
)

const (
	// fcmBatchSize is SendEach's limit on messages per call.
	fcmBatchSize = 500
	// fcmMaxBackoff caps the exponential backoff ceiling.
	fcmMaxBackoff = 5 * time.Minute
	// fcmMaxTTL is the longest TTL FCM accepts (28 days).
	fcmMaxTTL = 28 * 24 * time.Hour
	// fcmCollapseKey makes FCM keep only the newest undelivered doorbell.
	fcmCollapseKey = "policy_changed"
)

// FCMConfig configures an FCMBell. Only ProjectID and one of CredentialsFile
// or Endpoint are required.
type FCMConfig struct {
	// CredentialsFile is a service account JSON file. Empty with Endpoint set
	// means unauthenticated requests, for an emulator or a test server.
	CredentialsFile string
	// ProjectID is the Firebase project. Required.
	ProjectID string
	// Endpoint replaces the FCM API base URL (https://fcm.googleapis.com/v1).
	// A URL without a path, such as "http://127.0.0.1:9999", gets "/v1"
	// appended, as the SDK posts to <Endpoint>/projects/<p>/messages:send.
	Endpoint string
	// TTL is how long FCM keeps an undelivered doorbell, and how long this
	// bell keeps retrying one. Zero means DefaultFCMTTL; at most 28 days.
	TTL time.Duration
	// Logger receives the bell's logs; nil discards them.
	Logger *slog.Logger
	// OnInvalidToken is called, from Run's goroutine, when FCM answers that
	// a device's token is UNREGISTERED or INVALID_ARGUMENT. The callee
	// should delete the token only if it is still the device's current one,
	// as the device may have registered a new token meanwhile. It must not
	// block for long; it may call Ring. Nil ignores invalid tokens.
	OnInvalidToken func(deviceID, token string)
	// HTTPClient, when set, is used as is for every FCM request: it replaces
	// the SDK's authenticated client, so it cannot be combined with
	// CredentialsFile.
	HTTPClient *http.Client
	// MaxRetries bounds the retries of one message after a retryable
	// failure (429, 5xx, network). Zero means DefaultFCMMaxRetries; a
	// negative value disables retries.
	MaxRetries int
	// BaseBackoff is the ceiling of the first retry's delay; the ceiling
	// doubles with each retry, up to five minutes, and the delay is drawn
	// uniformly below it (full jitter). A Retry-After from FCM is a lower
	// bound. Zero means DefaultFCMBaseBackoff.
	BaseBackoff time.Duration
	// SendTimeout is the deadline of one batch's send; a message still
	// unanswered then fails as retryable. Zero means DefaultFCMSendTimeout.
	SendTimeout time.Duration
	// Parallel is how many batches may be in flight at once. Zero means
	// DefaultFCMParallel.
	Parallel int
}

// FCMStats counts what an FCMBell did since it was created.
type FCMStats struct {
	// Sent counts messages FCM accepted.
	Sent uint64
	// Failed counts messages given up on: a non-retryable error other than
	// an invalid token, retries exhausted, or a retry that would come later
	// than the TTL.
	Failed uint64
	// Retried counts retries scheduled.
	Retried uint64
	// InvalidTokens counts messages FCM rejected for their token; each
	// called OnInvalidToken.
	InvalidTokens uint64
	// Batches counts SendEach calls.
	Batches uint64
}

// FCMDeliveryError is the classified failure of one FCM message.
type FCMDeliveryError struct {
	// Retryable reports that sending the same message later may succeed:
	// FCM answered 429 or 5xx, or the request did not reach FCM.
	Retryable bool
	// InvalidToken reports that FCM rejected the token (UNREGISTERED or
	// INVALID_ARGUMENT); the token should be deleted, never retried.
	InvalidToken bool
	// RetryAfter is FCM's Retry-After, zero when it sent none.
	RetryAfter time.Duration
	// Err is the SDK's error.
	Err error
}

func (e *FCMDeliveryError) Error() string {
	switch {
	case e.InvalidToken:
		return fmt.Sprintf("fcm: invalid token: %v", e.Err)
	case e.Retryable && e.RetryAfter > 0:
		return fmt.Sprintf("fcm: retryable after %v: %v", e.RetryAfter, e.Err)
	case e.Retryable:
		return fmt.Sprintf("fcm: retryable: %v", e.Err)
	default:
		return fmt.Sprintf("fcm: %v", e.Err)
	}
}

func (e *FCMDeliveryError) Unwrap() error { return e.Err }

// ClassifyFCMError classifies an error the firebase SDK returned for one
// message; it returns nil for a nil error. It must be given the SDK's error
// itself, not a wrapped one: the SDK's predicates do not unwrap.
func ClassifyFCMError(err error) *FCMDeliveryError {
	return classifyFCMError(err, time.Now())
}

func classifyFCMError(err error, now time.Time) *FCMDeliveryError {
	if err == nil {
		return nil
	}
	de := &FCMDeliveryError{Err: err}
	if messaging.IsUnregistered(err) || messaging.IsInvalidArgument(err) {
		de.InvalidToken = true
		return de
	}
	if resp := errorutils.HTTPResponse(err); resp != nil {
		// FCM answered. Only throttling and server errors are worth a retry;
		// any other 4xx (SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR, 401,
		// 403) will fail again the same way.
		de.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		de.Retryable = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		return de
	}
	switch {
	case errorutils.IsUnavailable(err), errorutils.IsDeadlineExceeded(err), errorutils.IsUnknown(err),
		errorutils.IsInternal(err), errorutils.IsResourceExhausted(err):
		// An SDK error without an HTTP response: the request never got an
		// answer (connection refused, reset, timeout).
		de.Retryable = true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		de.Retryable = true
	}
	return de
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(fcmMaxTTL/time.Second) {
			secs = int64(fcmMaxTTL / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// fcmSender is the part of *messaging.Client the bell uses.
type fcmSender interface {
	SendEach(ctx context.Context, messages []*messaging.Message) (*messaging.BatchResponse, error)
}

// FCMBell rings doorbells through Firebase Cloud Messaging: one data-only,
// high-priority message per device. Ring queues and coalesces; Run sends in
// batches, retries transient failures with backoff and reports dead tokens.
type FCMBell struct {
	sender         fcmSender
	project        string
	ttl            time.Duration
	maxRetries     int
	retry          backoff.Backoff // the delay before a retry; Delay only, so workers share it
	sendTimeout    time.Duration
	parallel       int
	log            *slog.Logger
	onInvalidToken func(deviceID, token string)

	// Injected in tests.
	now       func() time.Time
	after     func(time.Duration) <-chan time.Time
	onSettled func(r Ring, err error) // a ring is delivered (nil) or given up

	mu      sync.Mutex
	pending map[ringKey]*fcmPending // by device and kind
	wake    chan struct{}
	running atomic.Bool

	sent, failed, retried, invalid, batches atomic.Uint64
}

var _ Bell = (*FCMBell)(nil)

// fcmPending is a queued ring and its retry state.
type fcmPending struct {
	ring     Ring
	queued   time.Time // when this version was rung; retries stop at queued+TTL
	attempts int       // retries scheduled so far
	due      time.Time // zero: send at once
}

// NewFCMBell returns an FCM bell for cfg. It loads the credentials now, so a
// missing or broken credentials file fails here, not on the first ring.
func NewFCMBell(ctx context.Context, cfg FCMConfig) (*FCMBell, error) {
	if cfg.ProjectID == "" {
		return nil, errors.New("fcm bell: ProjectID is required")
	}
	if cfg.CredentialsFile == "" && cfg.Endpoint == "" {
		return nil, errors.New("fcm bell: CredentialsFile is required (or Endpoint, for an unauthenticated emulator or test server)")
	}
	if cfg.CredentialsFile != "" && cfg.HTTPClient != nil {
		return nil, errors.New("fcm bell: HTTPClient replaces the SDK's authenticated client and cannot be combined with CredentialsFile")
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultFCMTTL
	}
	if ttl < time.Second || ttl > fcmMaxTTL {
		return nil, fmt.Errorf("fcm bell: TTL %v is out of range [1s, %v]", cfg.TTL, fcmMaxTTL)
	}
	maxRetries := cfg.MaxRetries
	switch {
	case maxRetries == 0:
		maxRetries = DefaultFCMMaxRetries
	case maxRetries < 0:
		maxRetries = 0
	}
	base := cfg.BaseBackoff
	if base == 0 {
		base = DefaultFCMBaseBackoff
	}
	if base < 0 {
		return nil, fmt.Errorf("fcm bell: BaseBackoff %v is negative", base)
	}
	sendTimeout := cfg.SendTimeout
	if sendTimeout == 0 {
		sendTimeout = DefaultFCMSendTimeout
	}
	if sendTimeout < 0 {
		return nil, fmt.Errorf("fcm bell: SendTimeout %v is negative", sendTimeout)
	}
	parallel := cfg.Parallel
	if parallel == 0 {
		parallel = DefaultFCMParallel
	}
	if parallel < 0 {
		return nil, fmt.Errorf("fcm bell: Parallel %d is negative", parallel)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		ep, err := fcmEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithEndpoint(ep))
	}
	if cfg.CredentialsFile != "" {
		opts = append(opts, option.WithCredentialsFile(cfg.CredentialsFile))
	} else {
		opts = append(opts, option.WithoutAuthentication())
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm bell: creating firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		if cfg.CredentialsFile != "" {
			return nil, fmt.Errorf("fcm bell: creating messaging client with credentials file %s: %w", cfg.CredentialsFile, err)
		}
		return nil, fmt.Errorf("fcm bell: creating messaging client: %w", err)
	}

	return &FCMBell{
		sender:     client,
		project:    cfg.ProjectID,
		ttl:        ttl,
		maxRetries: maxRetries,
		// Full jitter below a ceiling that starts at the base and doubles
		// up to fcmMaxBackoff: a delay d spread by ±100% lies in [0, 2d].
		retry:          backoff.Backoff{Min: base / 2, Max: fcmMaxBackoff / 2, Jitter: 1},
		sendTimeout:    sendTimeout,
		parallel:       parallel,
		log:            logger.With("component", "fcm"),
		onInvalidToken: cfg.OnInvalidToken,
		now:            time.Now,
		after:          time.After,
		pending:        make(map[ringKey]*fcmPending),
		wake:           make(chan struct{}, 1),
	}, nil
}

// fcmEndpoint validates an endpoint URL and gives a bare host the "/v1" path
// of the FCM API.
func fcmEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("fcm bell: Endpoint %q is not an http(s) URL", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1"
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Ring queues a doorbell for each ring that has an FCM token; rings without
// one are skipped. Rings for the same device coalesce into the one with the
// highest version (the later one on a tie). Ring never blocks on delivery.
func (b *FCMBell) Ring(rings ...Ring) {
	now := b.now()
	queued := false
	b.mu.Lock()
	for _, r := range rings {
		if r.FCMToken == "" {
			continue
		}
		if p, ok := b.pending[keyOf(r)]; ok && p.ring.Version > r.Version {
			continue
		}
		// A newer ring also replaces a pending retry: it is sent at once,
		// with a fresh retry budget.
		b.pending[keyOf(r)] = &fcmPending{ring: r, queued: now}
		queued = true
	}
	b.mu.Unlock()
	if queued {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Run sends queued doorbells until ctx is done, then returns nil once
// every send in flight has returned. Up to Parallel batches are in flight
// at once, each under SendTimeout: waiting out a backoff, or a batch that
// hangs, never delays rings for other devices. Run must not be called
// twice at once.
func (b *FCMBell) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("fcm bell: Run is already running")
	}
	defer b.running.Store(false)
	b.log.Info("fcm bell running", "project", b.project, "parallel", b.parallel, "sendTimeout", b.sendTimeout)
	defer b.log.Info("fcm bell stopped")
	var inflight sync.WaitGroup
	defer inflight.Wait()
	slots := make(chan struct{}, b.parallel)
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Hold a slot before taking rings, so that while every slot is busy
		// new rings keep coalescing in pending.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		batch, wait := b.takeDue()
		if len(batch) > 0 {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				b.deliver(ctx, batch)
				<-slots
				b.poke() // rings may have come due meanwhile
			}()
			continue
		}
		<-slots
		var timer <-chan time.Time
		if wait > 0 {
			timer = b.after(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-timer:
		}
	}
}

// poke wakes Run without blocking.
func (b *FCMBell) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Stats returns the bell's counters.
func (b *FCMBell) Stats() FCMStats {
	return FCMStats{
		Sent:          b.sent.Load(),
		Failed:        b.failed.Load(),
		Retried:       b.retried.Load(),
		InvalidTokens: b.invalid.Load(),
		Batches:       b.batches.Load(),
	}
}

// batchSize is how many messages one SendEach call carries: SendEach's
// limit shared among the batches in flight, so that Parallel batches
// together make at most fcmBatchSize requests at once (the SDK sends every
// message of a call concurrently), and a hung message holds only its own
// batch's share.
func (b *FCMBell) batchSize() int { return max(1, fcmBatchSize/b.parallel) }

// takeDue removes and returns up to batchSize rings that are due. When
// none is, it returns how long until the next retry is, or zero when there
// is none.
func (b *FCMBell) takeDue() ([]*fcmPending, time.Duration) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*fcmPending
	var wait time.Duration
	for id, p := range b.pending {
		if d := p.due.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		if len(batch) == b.batchSize() {
			continue
		}
		batch = append(batch, p)
		delete(b.pending, id)
	}
	return batch, wait
}

// message is the doorbell for r: data only, never any policy content. A
// command doorbell has its own collapse key, so FCM never drops a policy
// doorbell for it or the other way round.
func (b *FCMBell) message(r Ring) *messaging.Message {
	ttl := b.ttl
	if r.Command {
		return &messaging.Message{
			Token: r.FCMToken,
			Data:  map[string]string{"type": proto.CommandDoorbellType},
			Android: &messaging.AndroidConfig{
				Priority:    "high",
				CollapseKey: proto.CommandCollapseKey,
				TTL:         &ttl,
			},
		}
	}
	return &messaging.Message{
		Token: r.FCMToken,
		Data: map[string]string{
			"type":    proto.DoorbellType,
			"version": strconv.FormatInt(r.Version, 10),
		},
		Android: &messaging.AndroidConfig{
			Priority:    "high",
			CollapseKey: fcmCollapseKey,
			TTL:         &ttl,
		},
	}
}

// deliver sends one batch and settles or reschedules each of its rings.
func (b *FCMBell) deliver(ctx context.Context, batch []*fcmPending) {
	msgs := make([]*messaging.Message, len(batch))
	for i, p := range batch {
		msgs[i] = b.message(p.ring)
	}
	b.batches.Add(1)
	sendCtx, cancel := context.WithTimeout(ctx, b.sendTimeout)
	resp, err := b.sender.SendEach(sendCtx, msgs)
	cancel()
	if ctx.Err() != nil {
		// Shutting down: what failed now failed because of it.
		return
	}
	now := b.now()
	if err != nil {
		// The whole call failed. In SDK v4.19.0 that is only local
		// validation, but nothing was sent, so retry within the budget.
		de := &FCMDeliveryError{Retryable: true, Err: err}
		b.log.Warn("fcm send failed", "messages", len(batch), "err", err)
		for _, p := range batch {
			b.fail(p, de, now)
		}
		return
	}
	ok := 0
	for i, p := range batch {
		var sendErr error
		switch {
		case i >= len(resp.Responses) || resp.Responses[i] == nil:
			sendErr = errors.New("no response for message")
		case !resp.Responses[i].Success:
			sendErr = resp.Responses[i].Error
			if sendErr == nil {
				sendErr = errors.New("failed without an error")
			}
		}
		if sendErr == nil {
			ok++
			b.sent.Add(1)
			b.settled(p.ring, nil)
			continue
		}
		b.fail(p, classifyFCMError(sendErr, now), now)
	}
	b.log.Debug("fcm batch sent", "messages", len(batch), "ok", ok)
}

// fail handles one failed message: it reports an invalid token, schedules
// a retry, or gives up.
func (b *FCMBell) fail(p *fcmPending, de *FCMDeliveryError, now time.Time) {
	r := p.ring
	log := b.log.With("device", r.DeviceID, "version", r.Version, "command", r.Command, "token", tokenPrefix(r.FCMToken))
	switch {
	case de.InvalidToken:
		b.invalid.Add(1)
		log.Info("fcm rejected the device's token", "err", de.Err)
		if b.onInvalidToken != nil {
			b.onInvalidToken(r.DeviceID, r.FCMToken)
		}
		b.settled(r, de)
		return
	case !de.Retryable:
		b.failed.Add(1)
		log.Warn("fcm doorbell dropped", "err", de.Err)
		b.settled(r, de)
		return
	case p.attempts >= b.maxRetries:
		b.failed.Add(1)
		log.Warn("fcm doorbell dropped: retries exhausted", "retries", p.attempts, "err", de.Err)
		b.settled(r, de)
		return
	}
	delay := b.retry.Delay(p.attempts + 1)
	if de.RetryAfter > delay {
		delay = de.RetryAfter
	}
	due := now.Add(delay)
	if due.After(p.queued.Add(b.ttl)) {
		b.failed.Add(1)
		log.Warn("fcm doorbell dropped: retry would come after its TTL", "delay", delay, "err", de.Err)
		b.settled(r, de)
		return
	}
	p.attempts++
	p.due = due

	b.mu.Lock()
	if cur, ok := b.pending[keyOf(r)]; ok && cur.ring.Version >= r.Version {
		// Rung again while in flight: the newer ring goes out anyway.
		b.mu.Unlock()
		log.Debug("fcm retry superseded by a newer ring")
		b.settled(r, de)
		return
	}
	b.pending[keyOf(r)] = p
	b.mu.Unlock()
	b.retried.Add(1)
	log.Debug("fcm doorbell retry scheduled", "retry", p.attempts, "delay", delay, "err", de.Err)
}

func (b *FCMBell) settled(r Ring, err error) {
	if b.onSettled != nil {
		b.onSettled(r, err)
	}
}

// tokenPrefix shortens a token for logs: at most 8 characters and never more
// than half of it.
func tokenPrefix(token string) string {
	n := min(8, len(token)/2)
	return token[:n] + "…"
}
