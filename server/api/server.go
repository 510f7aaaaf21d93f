// Package server is the Doorbell MDM REST API (fiber) and the daemon that
// runs it together with the embedded broker and the doorbells.
package api

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/service"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// Presence tells whether a device holds an MQTT session now.
type Presence interface {
	Connected(deviceID string) bool
}

// Config configures the API. AdminToken and EnrollToken are required.
type Config struct {
	AdminToken  string
	EnrollToken string
	// MQTTURL is the broker URL given to enrolling agents. Empty means
	// tcp://<host the agent used for HTTP>:<MQTTPort>.
	MQTTURL  string
	MQTTPort string
	// Presence answers DeviceStatus.connected; nil means nobody is connected.
	Presence Presence
	// Bell rings devices whose policy changed; nil rings nothing.
	Bell bridge.Bell
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PKI issues device certificates and checks the client certificates
	// presented over TLS; nil means TLS is off (CSRs are ignored).
	PKI *pki.Authority
	// Trust holds the trust settings (sessions, replay window, rate
	// limits, agent allowlist); its zero value is usable.
	Trust TrustConfig
	// Metrics is the Prometheus registry served at /metrics; nil makes one.
	Metrics *Metrics
	// Service is the loop's rules; nil makes one over the store from
	// Bell, Now, Logger and Trust.
	Service *service.Service
	// MaxConnections bounds the HTTP connections served at once; one over
	// it is answered 503 and closed at once. 0 means fasthttp's default
	// (262,144).
	MaxConnections int
	// IdleTimeout is how long an idle keep-alive connection is kept; 0
	// means the package's IdleTimeout.
	IdleTimeout time.Duration
}

// IdleTimeout is how long the server keeps an idle keep-alive connection
// (it was 2 minutes). Agents close theirs when a sync ends; this bounds what
// a client that keeps them (an agent before that, a browser) pins of the
// HTTP connection cap, its connection rate x IdleTimeout, and is still
// longer than the pauses inside one client's burst of requests. A request
// after a longer pause pays one resumed TLS handshake (docs/PERFORMANCE.md).
const IdleTimeout = 5 * time.Second

// API is the REST API over the service.
type API struct {
	service.Credentials
	cfg    Config
	logger *slog.Logger
	app    *fiber.App
	svc    *service.Service
	events eventHub // the live stream's subscribers (events.go)

	metrics *Metrics
}

// Limits on what a client may send.
const (
	maxFCMToken  = 4096
	defaultLimit = 500
	maxLimit     = 1000
)

type nopPresence struct{}

func (nopPresence) Connected(string) bool { return false }

// New returns the API. It does not listen; see App and Daemon.
func New(st service.Store, cfg Config) (*API, error) {
	if cfg.AdminToken == "" || cfg.EnrollToken == "" {
		return nil, errors.New("server: admin token and enrollment token are required")
	}
	if cfg.Presence == nil {
		cfg.Presence = nopPresence{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Trust = cfg.Trust.withDefaults()
	a := &API{Credentials: service.Credentials{Devices: st, Operators: st, AdminToken: cfg.AdminToken}, cfg: cfg, logger: cfg.Logger.With("component", "api")}
	if a.svc = cfg.Service; a.svc == nil {
		a.svc = service.New(st, service.Config{Bell: cfg.Bell, Now: cfg.Now, Logger: cfg.Logger,
			ReportSkew: cfg.Trust.ReportSkew, RequireReportNonce: cfg.Trust.RequireReportNonce})
	}
	if a.metrics = cfg.Metrics; a.metrics == nil {
		a.metrics = NewMetrics()
	}
	if err := a.metrics.Register(&DeviceStates{Summaries: a.svc}); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	// The live stream and the metrics hear of every committed change.
	a.svc.Subscribe(a.publishChange)
	a.svc.Subscribe(a.metrics.observeChange)
	a.svc.OnRevoke(func(p service.Principal) {
		if p.Kind == service.PrincipalOperator {
			if n := a.events.revoke(p.Name); n > 0 {
				a.logger.Info("live streams closed: token revoked", "operator", p.Name, "streams", n)
			}
		}
	})
	a.app = fiber.New(fiber.Config{
		AppName:               "doorbell",
		BodyLimit:             maxBodyBytes, // guardBody and readBody keep each route to its own
		StreamRequestBody:     true,
		Concurrency:           cfg.MaxConnections, // a body is read only after its caller is authenticated
		ReadBufferSize:        8 << 10,            // also the limit on request line + headers
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           cmp.Or(cfg.IdleTimeout, IdleTimeout),
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(a.logger),
	})
	a.routes()
	return a, nil
}

// Service is the service the API calls.
func (a *API) Service() *service.Service { return a.svc }

// App returns the fiber application, for serving and for tests.
func (a *API) App() *fiber.App { return a.app }

// --- credentials -----------------------------------------------------------

func bearer(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func equalToken(a, b string) bool { return service.EqualToken(a, b) }

func hashSecret(secret string) []byte { return service.HashSecret(secret) }

func (a *API) isOperator(token string) bool { return a.IsOperator(token) }

// principal returns the operator the request's token names. A device's
// secret is 403, anything else 401.
func (a *API) principal(c *fiber.Ctx) (operator, error) {
	tok := bearer(c)
	if tok == "" {
		return operator{}, errUnauthorized
	}
	if op, ok := a.Operator(c.UserContext(), tok); ok {
		return operator{name: op.Name, role: op.Role}, nil
	}
	if _, err := a.svc.DeviceBySecretHash(c.UserContext(), hashSecret(tok)); err == nil {
		return operator{}, errForbidden
	}
	return operator{}, errUnauthorized
}

// device reads what authenticating the device named in the path needs
// (not its record) and admits its own secret (and an operator's token when
// allowOperator; asOperator then says so). An unknown device is 404 before
// any credential check, so a revoked agent learns to re-enroll. The
// device's own secret is checked first: it is what almost every request
// carries, and it needs no further read.
func (a *API) device(c *fiber.Ctx, allowOperator bool) (d store.DeviceAuth, asOperator bool, err error) {
	id := strings.Clone(c.Params("id"))
	tok := bearer(c)
	if tok == "" {
		return store.DeviceAuth{}, false, errUnauthorized
	}
	if d, err = a.svc.DeviceAuth(c.UserContext(), id); err != nil {
		return d, false, err
	}
	// Authenticate the caller first, then authorise: a secret is checked
	// together with the certificate of the device it belongs to.
	h := hashSecret(tok)
	if subtle.ConstantTimeCompare(h, d.SecretHash) == 1 {
		return d, false, a.checkClientCert(c, d)
	}
	if a.isOperator(tok) {
		if allowOperator {
			return d, true, nil
		}
		return d, false, errForbidden
	}
	if other, err := a.svc.DeviceBySecretHash(c.UserContext(), h); err == nil {
		if err := a.checkClientCert(c, other); err != nil {
			return d, false, err
		}
		return d, false, errForbidden
	}
	return d, false, errUnauthorized
}

// --- bodies ----------------------------------------------------------------

// decode parses a JSON body into v. strict refuses unknown fields: operator
// bodies are strict so a typo in a setting is an error, device bodies are
// not so newer agents keep working with an older server.
func decode(c *fiber.Ctx, v any, strict bool) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf("invalid_body", "request body is empty; want JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errorf("invalid_body", "field %q must be %s, not %s", te.Field, te.Type, te.Value)
		}
		return errorf("invalid_body", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf("invalid_body", "unexpected data after the JSON value")
	}
	return nil
}

func checkString(name, v string, max int) error {
	if len(v) > max {
		return errorf("invalid_body", "%s is longer than %d bytes", name, max)
	}
	return nil
}

// --- handlers --------------------------------------------------------------

func (a *API) enroll(c *fiber.Ctx) error {
	tok := bearer(c)
	var tokenHash []byte // nil: the static enrollment token
	if tok == "" || !equalToken(tok, a.cfg.EnrollToken) {
		if tok != "" {
			tokenHash = hashSecret(tok)
		}
		if err := a.svc.CheckEnrollToken(c.UserContext(), tokenHash); err != nil {
			return err
		}
	}
	var req proto.EnrollRequest
	if err := decode(c, &req, false); err != nil {
		return err
	}
	for name, v := range map[string]string{"model": req.Model, "osVersion": req.OSVersion, "agentVersion": req.AgentVersion} {
		if err := checkString(name, v, service.MaxStringField); err != nil {
			return err
		}
	}
	id, secret := randomHex(16), randomToken(32)
	cert, err := a.issueDeviceCert(c, req.CSR, id)
	if err != nil {
		return err
	}
	d := store.Device{
		ClientCert:   cert != "",
		ID:           id,
		SecretHash:   hashSecret(secret),
		Model:        req.Model,
		OSVersion:    req.OSVersion,
		AgentVersion: req.AgentVersion,
		EnrolledAt:   a.cfg.Now().UTC().Truncate(time.Second),
		Policy:       proto.DevicePolicy{Version: 1},

		SyncIntervalSeconds: req.SyncIntervalSeconds,
	}
	if err := a.svc.Enroll(c.UserContext(), d, tokenHash); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(proto.EnrollResponse{
		DeviceID:     id,
		DeviceSecret: secret,
		Policy:       d.Policy,
		MQTT:         proto.MQTTInfo{URL: a.mqttURL(c), Topic: proto.PolicyChangedTopic(id)},
		CACert:       a.trustPEM(c),
		Certificate:  cert,
	})
}

func (a *API) mqttURL(c *fiber.Ctx) string {
	if a.cfg.MQTTURL != "" {
		return a.cfg.MQTTURL
	}
	host := c.Hostname()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return a.mqttScheme() + "://" + net.JoinHostPort(host, a.cfg.MQTTPort)
}

// getPolicy answers a poll carrying the current ETag from the device's
// authentication alone; only a changed policy is read (not the rest of the
// record).
func (a *API) getPolicy(c *fiber.Ctx) error {
	auth := requestAuth(c)
	a.inventoryRefreshHeader(c, auth.ID)
	open, err := a.svc.HasOpenCommands(c.UserContext(), auth.ID)
	if err != nil {
		return err
	}
	if open {
		c.Set(proto.CommandsHeader, proto.CommandsPending)
	} else {
		c.Set(proto.CommandsHeader, proto.CommandsNone)
	}
	if etag := policyETag(auth.PolicyVersion); c.Get(fiber.HeaderIfNoneMatch) == etag {
		c.Set(fiber.HeaderETag, etag)
		return c.SendStatus(http.StatusNotModified)
	}
	p, err := a.svc.DevicePolicy(c.UserContext(), auth.ID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, policyETag(p.Version))
	return c.JSON(p)
}

func policyETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func (a *API) report(c *fiber.Ctx) error {
	var r proto.ComplianceReport
	if err := decode(c, &r, false); err != nil {
		return err
	}
	if err := a.svc.Report(c.UserContext(), requestAuth(c), r); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

func (a *API) registerToken(c *fiber.Ctx) error {
	d := requestAuth(c)
	var reg proto.TokenRegistration
	if err := decode(c, &reg, false); err != nil {
		return err
	}
	if reg.FCMToken == "" {
		return errorf("invalid_body", "fcmToken is required")
	}
	if err := checkString("fcmToken", reg.FCMToken, maxFCMToken); err != nil {
		return err
	}
	if err := a.svc.SetFCMToken(c.UserContext(), d.ID, reg.FCMToken); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

func (a *API) status(c *fiber.Ctx) error {
	d := requestDevice(c)
	return c.JSON(a.deviceStatus(d))
}

func (a *API) listDevices(c *fiber.Ctx) error {
	limit := defaultLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return errorf("invalid_query", "limit must be a whole number from 1 to %d", maxLimit)
		}
		limit = n
	}
	var matches []func(store.Device) bool
	var want proto.ComplianceState
	if s := c.Query("state"); s != "" {
		want = proto.ComplianceState(s)
		if !want.Valid() {
			return errorf("invalid_query", "state must be one of %v", proto.States)
		}
		matches = append(matches, func(d store.Device) bool { return evaluate(d) == want })
	}
	switch s := c.Query("seen"); s {
	case "":
	case "overdue":
		matches = append(matches, func(d store.Device) bool { return a.svc.Overdue(d, a.svc.LastSeen(d)) })
	default:
		return errorf("invalid_query", "seen must be \"overdue\"")
	}
	var failingBefore time.Time
	if s := c.Query("failingSince.lt"); s != "" {
		t, err := service.ParseFailingSince(s, a.svc.Now())
		if err != nil {
			return err
		}
		failingBefore = t
		matches = append(matches, func(d store.Device) bool { return service.FailingBefore(d, t) })
	}
	var match func(store.Device) bool
	if len(matches) > 0 {
		match = func(d store.Device) bool {
			for _, m := range matches {
				if !m(d) {
					return false
				}
			}
			return true
		}
	}
	query, err := url.ParseQuery(string(c.Request().URI().QueryString()))
	if err != nil {
		return errorf("invalid_query", "malformed query string: %v", err)
	}
	iq, filtered, err := service.InventoryFilter(query)
	if err != nil {
		return err
	}
	var devs []store.Device
	var more bool
	if text, ok := query["q"]; ok {
		// The fleet search: one text over id, model and inventory facts.
		if filtered {
			return errorf("invalid_query", "q cannot be combined with inventory filters (hostname~=, serial~=, ...)")
		}
		devs, more, err = a.svc.SearchDevices(c.UserContext(), strings.Join(text, " "), c.Query("after"), limit, match)
	} else if filtered {
		devs, more, err = a.svc.DevicesByInventory(c.UserContext(), iq, c.Query("after"), limit, match)
	} else if !failingBefore.IsZero() && len(matches) == 1 {
		// The store answers ?failingSince.lt= alone from its column
		// (PostgreSQL).
		devs, more, err = a.svc.DevicesFailingBefore(c.UserContext(), failingBefore, c.Query("after"), limit)
	} else if want != "" && len(matches) == 1 {
		// The store answers ?state= alone from its index (PostgreSQL).
		devs, more, err = a.svc.Devices(c.UserContext(), want, c.Query("after"), limit, nil)
	} else {
		devs, more, err = a.svc.Devices(c.UserContext(), "", c.Query("after"), limit, match)
	}
	if err != nil {
		return err
	}
	out := proto.DeviceList{Devices: make([]proto.DeviceStatus, 0, len(devs))}
	for _, d := range devs {
		out.Devices = append(out.Devices, a.deviceStatus(d))
	}
	if more && len(devs) > 0 {
		out.NextAfter = devs[len(devs)-1].ID
	}
	return c.JSON(out)
}

func evaluate(d store.Device) proto.ComplianceState {
	st, _ := service.Evaluate(d)
	return st
}

func (a *API) deviceStatus(d store.Device) proto.DeviceStatus {
	s := proto.DeviceStatus{
		DeviceID:       d.ID,
		Model:          d.Model,
		OSVersion:      d.OSVersion,
		AgentVersion:   d.AgentVersion,
		EnrolledAt:     d.EnrolledAt,
		DesiredVersion: d.Policy.Version,
		Connected:      a.cfg.Presence.Connected(d.ID),
		FCMRegistered:  d.FCMToken != "",
		Integrity:      a.integrity(d),
	}
	s.State, s.Failing = service.Evaluate(d)
	if !d.NonCompliantSince.IsZero() {
		t := d.NonCompliantSince
		s.NonCompliantSince = &t
	}
	for i, f := range s.Failing {
		if t, ok := d.FailingSince[f.Setting]; ok {
			s.Failing[i].FailingSince = &t
		}
	}
	if seen := a.svc.LastSeen(d); !seen.IsZero() {
		s.LastSeenAt = &seen
	}
	s.Overdue = a.svc.Overdue(d, a.svc.LastSeen(d))
	if d.Report != nil {
		t := d.Report.ReceivedAt
		s.LastReportAt = &t
		s.AppliedVersion = d.Report.AppliedPolicyVersion
	}
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return b
}

func randomHex(n int) string   { return hex.EncodeToString(randomBytes(n)) }
func randomToken(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }
