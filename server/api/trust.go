package api

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/internal/ratelimit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// TrustConfig holds the API's trust settings. Its zero value is usable:
// the default skew, no rate limits, no allowlist.
type TrustConfig struct {
	// ReportSkew is how far a report's reportedAt may be from the server's
	// clock either way; 0 means DefaultReportSkew.
	ReportSkew time.Duration
	// RequireReportNonce refuses reports without reportedAt and nonce
	// (capability-1 agents). When false they are accepted until the device
	// sends its first report with a nonce; from then on it must always.
	RequireReportNonce bool
	// EnrollPerMinute limits POST /enroll per remote IP; 0 means no limit.
	EnrollPerMinute int
	// DevicePerMinute limits the device endpoints per device id in the
	// path; 0 means no limit.
	DevicePerMinute int
	// AgentAllowlist holds the lower-case hex SHA-256 of every approved
	// agent binary; nil turns the integrity check off ("unchecked").
	AgentAllowlist map[string]bool
}

// Defaults of the trust settings, used by the daemon and the flags.
const (
	DefaultReportSkew      = 5 * time.Minute
	DefaultEnrollPerMinute = 60
	DefaultDevicePerMinute = 120
)

// Limits on the trust API's inputs.
const (
	defaultEnrollTTL   = 24 * time.Hour
	maxEnrollTTL       = 365 * 24 * time.Hour
	maxEnrollUses      = 1_000_000
	maxNonce           = 128
	minNonce           = 16
	defaultAuditLimit  = 100
	operatorNameFormat = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
)

var operatorNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (t TrustConfig) withDefaults() TrustConfig {
	if t.ReportSkew <= 0 {
		t.ReportSkew = DefaultReportSkew
	}
	return t
}

// operator is an authenticated operator: the token's name and role.
type operator struct {
	name, role string
}

// admin returns the operator when it may change things: an admin. A viewer
// is 403.
func (a *API) admin(c *fiber.Ctx) (operator, error) {
	op, err := a.principal(c)
	if err != nil {
		return op, err
	}
	if op.role != proto.RoleAdmin {
		return op, errorf("forbidden", "operator %q has the %s role, which may read but not change anything", op.name, op.role)
	}
	return op, nil
}

// audited returns the request context carrying the audit entry of a change
// op is about to make, for the store to record with the change.
func (a *API) audited(c *fiber.Ctx, op operator, action, target, detail string) context.Context {
	return service.WithAudit(c.UserContext(), proto.AuditEntry{
		At:       a.cfg.Now().UTC(),
		Actor:    op.name,
		Action:   action,
		Target:   target,
		Detail:   detail,
		RemoteIP: c.IP(),
	})
}

// --- rate limits -----------------------------------------------------------

// enrollLimiter limits POST /enroll per remote IP (before authentication,
// by nature: it is what slows down guessing an enrollment token). The
// table is bounded (ratelimit.DefaultCapacity addresses).
func (a *API) enrollLimiter() fiber.Handler {
	l := ratelimit.New(a.cfg.Trust.EnrollPerMinute, time.Minute, 0).WithClock(a.cfg.Now)
	return func(c *fiber.Ctx) error { return limit(c, l, c.IP()) }
}

// deviceLimiter limits a device's calls per device, keyed on the device the
// group's middleware authenticated (requestDevice), so it must run after
// it: requests that name a device without its credentials never reach it.
func (a *API) deviceLimiter() fiber.Handler {
	l := ratelimit.New(a.cfg.Trust.DevicePerMinute, time.Minute, 0).WithClock(a.cfg.Now)
	return func(c *fiber.Ctx) error { return limit(c, l, requestDeviceID(c)) }
}

// limit counts one request of key against l: 429 rate_limited with
// Retry-After once over.
func limit(c *fiber.Ctx, l *ratelimit.Limiter, key string) error {
	ok, retry := l.Allow(key)
	if ok {
		return c.Next()
	}
	secs := int((retry + time.Second - 1) / time.Second)
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	return errorf("rate_limited", "too many requests; retry after %d seconds", secs)
}

// --- enrollment tokens -----------------------------------------------------

func enrollTokenView(t store.EnrollmentToken) proto.EnrollmentToken {
	return proto.EnrollmentToken{
		ID:        t.ID,
		ExpiresAt: t.ExpiresAt,
		MaxUses:   t.MaxUses,
		Uses:      t.Uses,
		CreatedAt: t.CreatedAt,
		CreatedBy: t.CreatedBy,
	}
}

func (a *API) createEnrollToken(c *fiber.Ctx) error {
	op := requestOperator(c)
	var err error
	var req proto.EnrollmentTokenRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	ttl := defaultEnrollTTL
	if req.ExpiresIn != "" {
		ttl, err = time.ParseDuration(req.ExpiresIn)
		if err != nil || ttl <= 0 || ttl > maxEnrollTTL {
			return errorf("invalid_body", "expiresIn must be a positive duration up to %v, such as \"1h\" or \"30m\"", maxEnrollTTL)
		}
	}
	if req.MaxUses == 0 {
		req.MaxUses = 1
	}
	if req.MaxUses < 1 || req.MaxUses > maxEnrollUses {
		return errorf("invalid_body", "maxUses must be from 1 to %d", maxEnrollUses)
	}
	now := a.cfg.Now().UTC().Truncate(time.Second)
	secret := randomToken(32)
	t := store.EnrollmentToken{
		ID:        randomHex(8),
		Hash:      hashSecret(secret),
		ExpiresAt: now.Add(ttl),
		MaxUses:   req.MaxUses,
		CreatedAt: now,
		CreatedBy: op.name,
	}
	detail := fmt.Sprintf("maxUses=%d expiresAt=%s", t.MaxUses, t.ExpiresAt.Format(time.RFC3339))
	if err := a.svc.CreateEnrollmentToken(a.audited(c, op, "enrollment_token.create", t.ID, detail), t); err != nil {
		return err
	}
	out := enrollTokenView(t)
	out.Token = secret
	out.EnrollURL = a.enrollURLFor(c, secret)
	return c.Status(http.StatusCreated).JSON(out)
}

func (a *API) listEnrollTokens(c *fiber.Ctx) error {
	ts, err := a.svc.EnrollmentTokens(c.UserContext())
	if err != nil {
		return err
	}
	out := proto.EnrollmentTokenList{Tokens: make([]proto.EnrollmentToken, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, enrollTokenView(t))
	}
	return c.JSON(out)
}

func (a *API) revokeEnrollToken(c *fiber.Ctx) error {
	op := requestOperator(c)
	id := strings.Clone(c.Params("id"))
	if err := a.svc.RevokeEnrollmentToken(a.audited(c, op, "enrollment_token.revoke", id, ""), id); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// --- operator tokens -------------------------------------------------------

func (a *API) createOperatorToken(c *fiber.Ctx) error {
	op := requestOperator(c)
	var req proto.OperatorTokenRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	if !operatorNameRE.MatchString(req.Name) {
		return errorf("invalid_name", "name must be %s", operatorNameFormat)
	}
	if req.Role != proto.RoleAdmin && req.Role != proto.RoleViewer {
		return errorf("invalid_role", "role must be %q or %q", proto.RoleAdmin, proto.RoleViewer)
	}
	if req.Name == service.BuiltinAdminName {
		return service.ErrTokenExists(req.Name)
	}
	secret := randomToken(32)
	t := store.OperatorToken{Name: req.Name, Role: req.Role, Hash: hashSecret(secret), CreatedAt: a.cfg.Now().UTC().Truncate(time.Second)}
	if err := a.svc.CreateOperatorToken(a.audited(c, op, "token.create", t.Name, "role="+t.Role), t); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(proto.OperatorToken{Name: t.Name, Role: t.Role, Token: secret, CreatedAt: t.CreatedAt})
}

func (a *API) listOperatorTokens(c *fiber.Ctx) error {
	ts, err := a.svc.OperatorTokens(c.UserContext())
	if err != nil {
		return err
	}
	out := proto.OperatorTokenList{Tokens: make([]proto.OperatorToken, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, proto.OperatorToken{Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt})
	}
	return c.JSON(out)
}

func (a *API) deleteOperatorToken(c *fiber.Ctx) error {
	op := requestOperator(c)
	name := strings.Clone(c.Params("name"))
	if name == service.BuiltinAdminName {
		return errorf("builtin_token", "the built-in admin token is set by --admin-token and cannot be deleted")
	}
	// Durable before it returns, then every live session of the token is
	// cut at once (service.RevokePrincipal).
	if err := a.svc.DeleteOperatorToken(a.audited(c, op, "token.delete", name, ""), name); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// --- audit -----------------------------------------------------------------

func (a *API) audit(c *fiber.Ctx) error {
	limit := defaultAuditLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return errorf("invalid_query", "limit must be a whole number from 1 to %d", maxLimit)
		}
		limit = n
	}
	after := c.Query("after")
	if after != "" {
		if _, err := strconv.ParseUint(after, 10, 64); err != nil {
			return errorf("invalid_query", "after must be an entry id (a whole number)")
		}
	}
	entries, more, err := a.svc.AuditEntries(c.UserContext(), after, limit)
	if err != nil {
		return err
	}
	out := proto.AuditList{Entries: entries}
	if out.Entries == nil {
		out.Entries = []proto.AuditEntry{}
	}
	if more && len(entries) > 0 {
		out.NextAfter = entries[len(entries)-1].ID
	}
	return c.JSON(out)
}

// --- revocation ------------------------------------------------------------

func (a *API) deleteDevice(c *fiber.Ctx) error {
	op := requestOperator(c)
	id := strings.Clone(c.Params("id"))
	// The record is gone (committed) before the device's sessions are
	// closed (service.RevokePrincipal), so a reconnect with the old secret
	// is already refused.
	if err := a.svc.DeleteDevice(a.audited(c, op, "device.delete", id, ""), id); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// --- integrity -------------------------------------------------------------

func (a *API) integrity(d store.Device) proto.Integrity {
	switch {
	case a.cfg.Trust.AgentAllowlist == nil:
		return proto.IntegrityUnchecked
	case d.Report == nil || d.Report.AgentSHA256 == "":
		return proto.IntegrityUnreported
	case a.cfg.Trust.AgentAllowlist[strings.ToLower(d.Report.AgentSHA256)]:
		return proto.IntegrityOK
	}
	return proto.IntegrityUnknownBinary
}

// LoadAllowlist reads an agent allowlist: one hex SHA-256 per line; blank
// lines and everything after '#' are ignored.
func LoadAllowlist(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading agent allowlist: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.ToLower(strings.TrimSpace(line))
		if line == "" {
			continue
		}
		if b, err := hex.DecodeString(line); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("agent allowlist %s line %d: want a hex SHA-256 (64 hex digits), got %q", path, n, line)
		}
		out[line] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading agent allowlist: %w", err)
	}
	return out, nil
}
