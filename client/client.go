// Package client is a small Go client of the Doorbell MDM operator API, used
// by the doorbell command-line tools, the simulator and tests. It imports
// only proto, internal/backoff and the standard library.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Client calls the operator API of one server with one operator token. It is
// safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
	https bool
}

// Config configures a Client. Server is required.
type Config struct {
	// Server is the base URL, e.g. http://127.0.0.1:8080.
	Server string
	// Token is the operator token sent as a bearer credential.
	Token string
	// CAFile, when set, names a PEM file of CA certificates trusted instead
	// of the system roots (a server with a private CA).
	CAFile string
	// ServerPin, when set, is the SPKI pin (sha256/<base64>) of a
	// certificate in the server's chain, trusted instead of any CA: the pin
	// doorbell serve prints. It takes precedence over CAFile.
	ServerPin string
	// HTTPClient overrides the HTTP client; nil builds one. A given client
	// is used as is: CAFile is ignored.
	HTTPClient *http.Client
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" {
		return nil, errors.New("no server given (--server or DOORBELL_SERVER)")
	}
	u, err := url.Parse(cfg.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not an http:// or https:// URL", cfg.Server)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		switch {
		case cfg.ServerPin != "":
			if !validPin(cfg.ServerPin) {
				return nil, fmt.Errorf("server pin %q: want sha256/<base64 of 32 bytes>, as doorbell serve prints it", cfg.ServerPin)
			}
			tr.TLSClientConfig = pinnedTLS(cfg.ServerPin)
		case cfg.CAFile != "":
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: strings.TrimRight(cfg.Server, "/"), token: cfg.Token, hc: hc, https: u.Scheme == "https"}, nil
}

// APIError is an error answer of the server: its status and the contract's
// {"error":{"code","message"}} body.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// IsStatus reports whether err is an APIError with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and decodes a 2xx JSON answer into out (nil ignores it).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return explainTransport(err, c.https)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// drainClose reads what the decoder left of a body (a trailing newline, an
// ignored answer) before closing it, so the connection goes back to the pool
// for the next call: the simulator's thousands of calls reuse a few.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// readError turns a non-2xx answer into an *APIError, falling back to the
// status text when the body is not the contract's error body.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb proto.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		return &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" || len(msg) > 200 {
		msg = http.StatusText(resp.StatusCode)
	}
	return &APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: msg}
}

// ListOptions filters and pages GET /devices.
type ListOptions struct {
	// State keeps only devices in this state; "" keeps all.
	State proto.ComplianceState
	// Limit is the page size; 0 lets the server choose.
	Limit int
	// After is the cursor: the nextAfter of the previous page.
	After string
	// Seen "overdue" keeps only devices not seen within two of their sync
	// intervals; "" keeps all.
	Seen string
	// FailingSinceLT keeps only devices failing since before this: an
	// RFC 3339 time or a duration ago ("72h", "7d"), which the server
	// counts back from its own clock; "" keeps all.
	FailingSinceLT string
	// Where holds inventory filters (see ParseWhere), all of which must
	// hold.
	Where url.Values
}

// Devices returns one page of the fleet.
func (c *Client) Devices(ctx context.Context, o ListOptions) (proto.DeviceList, error) {
	q := url.Values{}
	for k, vs := range o.Where {
		q[k] = append(q[k], vs...)
	}
	if o.State != "" {
		q.Set("state", string(o.State))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Seen != "" {
		q.Set("seen", o.Seen)
	}
	if o.FailingSinceLT != "" {
		q.Set("failingSince.lt", o.FailingSinceLT)
	}
	path := "/devices"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l proto.DeviceList
	err := c.do(ctx, http.MethodGet, path, nil, &l)
	return l, err
}

// AllDevices pages through the fleet with the server's cursor and calls fn
// for each device until fn returns false, max devices were seen (0 = no
// limit) or the last page. o's Limit and After are set as it pages.
func (c *Client) AllDevices(ctx context.Context, o ListOptions, max int, fn func(proto.DeviceStatus) bool) error {
	const pageSize = 1000
	o.Limit, o.After = pageSize, ""
	seen := 0
	for {
		if max > 0 && max-seen < pageSize {
			o.Limit = max - seen
		}
		page, err := c.Devices(ctx, o)
		if err != nil {
			return err
		}
		for _, d := range page.Devices {
			seen++
			if !fn(d) || (max > 0 && seen >= max) {
				return nil
			}
		}
		if page.NextAfter == "" || len(page.Devices) == 0 {
			return nil
		}
		o.After = page.NextAfter
	}
}

// Status returns one device's status.
func (c *Client) Status(ctx context.Context, id string) (proto.DeviceStatus, error) {
	var s proto.DeviceStatus
	err := c.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id)+"/status", nil, &s)
	return s, err
}

// Policy returns one device's desired policy.
func (c *Client) Policy(ctx context.Context, id string) (proto.DevicePolicy, error) {
	var p proto.DevicePolicy
	err := c.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id)+"/policy", nil, &p)
	return p, err
}

// SetPolicy edits one device's desired policy and returns the policy as
// stored (its version grew by one when something changed).
func (c *Client) SetPolicy(ctx context.Context, id string, u proto.PolicyUpdate) (proto.DevicePolicy, error) {
	var p proto.DevicePolicy
	err := c.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"/policy", u, &p)
	return p, err
}

// EditPolicy sends a partial edit of one device's own settings layer:
// each setting named is set at device level, a JSON null removes the
// device's own value (a group's or the default applies again). Settings
// not named keep their values. It returns the policy as stored.
func (c *Client) EditPolicy(ctx context.Context, id string, edit map[string]json.RawMessage) (proto.DevicePolicy, error) {
	var p proto.DevicePolicy
	err := c.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"/policy", edit, &p)
	return p, err
}

// OperatorToken is an operator token as GET /tokens lists it; Token (the
// secret) is only set in the answer to CreateToken.
type OperatorToken struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Tokens lists the operator tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]OperatorToken, error) {
	var l struct {
		Tokens []OperatorToken `json:"tokens"`
	}
	err := c.do(ctx, http.MethodGet, "/tokens", nil, &l)
	return l.Tokens, err
}

// CreateToken creates an operator token with a role (admin or viewer); the
// answer carries the secret, shown only this once.
func (c *Client) CreateToken(ctx context.Context, name, role string) (OperatorToken, error) {
	var t OperatorToken
	err := c.do(ctx, http.MethodPost, "/tokens", map[string]string{"name": name, "role": role}, &t)
	return t, err
}

// DeleteToken revokes the named operator token.
func (c *Client) DeleteToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(name), nil, nil)
}

// Call sends method path with body (nil for none) as JSON and decodes a 2xx
// JSON answer into out (nil ignores it). It is for routes this package has
// no typed method for; errors are *APIError for an error answer.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, body, out)
}

// Raw sends method path with a JSON body and returns the answer's bytes and
// content type, for answers that are not JSON (an image).
func (c *Client) Raw(ctx context.Context, method, path string, body any) ([]byte, string, error) {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", explainTransport(err, c.https)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, "", readError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return b, resp.Header.Get("Content-Type"), err
}
