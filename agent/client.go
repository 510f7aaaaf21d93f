package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// DefaultHTTPTimeout bounds every request of the client New builds when
// Config.HTTPClient is nil.
const DefaultHTTPTimeout = 30 * time.Second

// Client is the device side of the REST contract. It holds no credentials:
// every device call takes the Credentials it acts with, so one Client can
// serve many devices (the fleet simulator does exactly that). It is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	http      *http.Client
	userAgent string
}

// Credentials authenticate device calls: the device id and its secret, sent
// as "Authorization: Bearer <Secret>".
type Credentials struct {
	DeviceID string
	Secret   string
}

// NewClient returns a client for the server at serverURL (for example
// "http://127.0.0.1:8080"). A nil httpClient becomes one with a
// DefaultHTTPTimeout timeout.
func NewClient(serverURL string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(serverURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("parsing server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", serverURL)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	return &Client{base: u, http: httpClient, userAgent: "doorbell-agent"}, nil
}

// PolicyResponse is the answer to a conditional policy fetch.
type PolicyResponse struct {
	// Policy is the desired policy; zero when NotModified.
	Policy proto.DevicePolicy
	// ETag identifies Policy; pass it back as the etag of the next fetch.
	ETag string
	// NotModified is true when the server answered 304: the policy the
	// caller holds for the etag it sent is still current.
	NotModified bool
	// InventoryRequested is true when the server asks for the whole
	// inventory (the "Doorbell-Inventory: full" header; capability 5).
	InventoryRequested bool
	// NoCommands is true when the server says the device has no command
	// to fetch ("Doorbell-Commands: none"; capability 9). A server that
	// does not say leaves it false: the agent asks.
	NoCommands bool
}

// Enroll registers a new device with an enrollment token (POST /enroll).
func (c *Client) Enroll(ctx context.Context, enrollToken string, req proto.EnrollRequest) (proto.EnrollResponse, error) {
	resp, _, err := c.enroll(ctx, enrollToken, req)
	return resp, err
}

// Policy fetches the device's desired policy (GET /devices/{id}/policy).
// A non-empty etag is sent as If-None-Match; when the server answers 304 the
// result has NotModified set and the same ETag.
func (c *Client) Policy(ctx context.Context, cred Credentials, etag string) (PolicyResponse, error) {
	var hdr http.Header
	if etag != "" {
		hdr = http.Header{"If-None-Match": {etag}}
	}
	var p proto.DevicePolicy
	resp, err := c.do(ctx, http.MethodGet, devicePath(cred.DeviceID, "policy"), cred.Secret, hdr, nil, &p, http.StatusOK, http.StatusNotModified)
	if err != nil {
		return PolicyResponse{}, fmt.Errorf("fetching policy: %w", err)
	}
	pr := PolicyResponse{
		InventoryRequested: resp.Header.Get(proto.InventoryRequestHeader) == "full",
		NoCommands:         resp.Header.Get(proto.CommandsHeader) == proto.CommandsNone,
	}
	if resp.StatusCode == http.StatusNotModified {
		pr.ETag, pr.NotModified = etag, true
		return pr, nil
	}
	pr.Policy, pr.ETag = p, resp.Header.Get("ETag")
	if pr.ETag == "" {
		pr.ETag = `"` + strconv.FormatInt(p.Version, 10) + `"`
	}
	return pr, nil
}

// Report sends what the device observed (POST /devices/{id}/report).
func (c *Client) Report(ctx context.Context, cred Credentials, r proto.ComplianceReport) error {
	if _, err := c.do(ctx, http.MethodPost, devicePath(cred.DeviceID, "report"), cred.Secret, nil, r, nil, http.StatusNoContent, http.StatusOK); err != nil {
		return fmt.Errorf("reporting compliance: %w", err)
	}
	return nil
}

// RegisterToken registers the device's FCM token (POST /devices/{id}/token).
func (c *Client) RegisterToken(ctx context.Context, cred Credentials, fcmToken string) error {
	body := proto.TokenRegistration{FCMToken: fcmToken}
	if _, err := c.do(ctx, http.MethodPost, devicePath(cred.DeviceID, "token"), cred.Secret, nil, body, nil, http.StatusNoContent, http.StatusOK); err != nil {
		return fmt.Errorf("registering push token: %w", err)
	}
	return nil
}

func devicePath(deviceID, what string) string {
	return "/devices/" + url.PathEscape(deviceID) + "/" + what
}

// do sends one request and decodes a JSON answer into out (when non-nil and
// the answer has a body). Any status outside want becomes an error; a
// contract error body becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path, bearer string, hdr http.Header, in, out any, want ...int) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
		hdr = hdr.Clone()
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Content-Type", "application/json")
	}
	return c.doBody(ctx, method, path, bearer, hdr, body, out, want...)
}

// doBody is do with a body already encoded; hdr carries its Content-Type.
func (c *Client) doBody(ctx context.Context, method, path, bearer string, hdr http.Header, body io.Reader, out any, want ...int) (*http.Response, error) {
	// path is already escaped (devicePath), so plain concatenation is right.
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, proto.MaxBodyBytes))
		resp.Body.Close()
	}()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, proto.MaxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("reading answer: %w", err)
	}
	ok := false
	for _, s := range want {
		if resp.StatusCode == s {
			ok = true
			break
		}
	}
	if !ok {
		return nil, parseAPIError(resp.StatusCode, raw)
	}
	if out != nil && resp.StatusCode != http.StatusNotModified && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decoding answer: %w", err)
		}
	}
	return resp, nil
}

// APIError is an error answer of the server: its HTTP status and the code and
// message of the contract's error body (empty when the body was not one).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether retrying the same request later may succeed
// (server errors and rate limiting).
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

func parseAPIError(status int, raw []byte) *APIError {
	e := &APIError{Status: status}
	var body proto.ErrorBody
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	// Not a contract body (a proxy, a crash page): keep a short excerpt.
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	e.Message = msg
	return e
}

// StatusOf returns the HTTP status of the *APIError in err's chain, or 0.
func StatusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404 answer: the server does not know
// the device (never enrolled there, or deleted).
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// IsBusy reports whether err is the server turning the request away for
// now: 503 (over its connection cap, or unavailable), 429 (rate limited),
// or a connection it reset or closed before answering (a server over its
// connection cap closes what it cannot serve, and a client still writing
// its request sees the reset, not the 503). A refused connection (nothing
// listening) is not busy.
func IsBusy(err error) bool {
	if s := StatusOf(err); s != 0 {
		return s == http.StatusServiceUnavailable || s == http.StatusTooManyRequests
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// IsUnauthorized reports whether err is a 401 answer: a wrong or missing
// credential.
func IsUnauthorized(err error) bool { return StatusOf(err) == http.StatusUnauthorized }

// IsForbidden reports whether err is a 403 answer.
func IsForbidden(err error) bool { return StatusOf(err) == http.StatusForbidden }

// IsConflict reports whether err is a 409 answer (for example a report for
// a policy version the server never issued).
func IsConflict(err error) bool { return StatusOf(err) == http.StatusConflict }
