package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
)

// fakeSessions records the devices whose sessions the service closed
// (service.RevokePrincipal), as the daemon's broker would.
type fakeSessions struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeSessions) revoked(p service.Principal) {
	if p.Kind != service.PrincipalDevice {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, p.Name)
}

func (f *fakeSessions) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

type trustHarness struct {
	*harness
	clock    *testkit.Clock
	sessions *fakeSessions
}

func newTrustHarness(t *testing.T, mod func(*Config)) *trustHarness {
	th := &trustHarness{clock: testkit.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)), sessions: &fakeSessions{}}
	th.harness = newHarnessWith(t, func(c *Config) {
		c.Now = th.clock.Now
		if mod != nil {
			mod(c)
		}
	})
	th.api.Service().OnRevoke(th.sessions.revoked)
	return th
}

func reportBody(version int64, at time.Time, nonce string) string {
	return fmt.Sprintf(`{"appliedPolicyVersion":%d,"reportedAt":%q,"nonce":%q}`, version, at.Format(time.RFC3339Nano), nonce)
}

// mustDo makes a request that must answer want, and decodes a JSON answer
// into out (when not nil).
func (h *harness) mustDo(want int, method, path, token, body string, out any) {
	h.t.Helper()
	r := h.do(method, path, token, body)
	if r.status != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, want)
	}
	if out != nil {
		r.decode(h.t, out)
	}
}

func (h *harness) createOperator(name, role string) string {
	h.t.Helper()
	var tok proto.OperatorToken
	h.mustDo(201, "POST", "/tokens", adminToken, fmt.Sprintf(`{"name":%q,"role":%q}`, name, role), &tok)
	if tok.Token == "" || tok.Name != name || tok.Role != role || tok.CreatedAt.IsZero() {
		h.t.Fatalf("created token %+v", tok)
	}
	return tok.Token
}

func (h *harness) createEnrollToken(body string) proto.EnrollmentToken {
	h.t.Helper()
	var tok proto.EnrollmentToken
	h.mustDo(201, "POST", "/enrollment-tokens", adminToken, body, &tok)
	if tok.Token == "" || tok.ID == "" {
		h.t.Fatalf("created enrollment token %+v", tok)
	}
	return tok
}

func (h *harness) enrollWith(token string) proto.EnrollResponse {
	h.t.Helper()
	var e proto.EnrollResponse
	h.mustDo(201, "POST", "/enroll", token, `{"model":"Pixel 8"}`, &e)
	return e
}

// snapshot is everything an attack could change, read through the API.
type snapshot struct {
	Devices      []proto.DeviceStatus
	Policies     []proto.DevicePolicy
	Operators    proto.OperatorTokenList
	EnrollTokens proto.EnrollmentTokenList
	Audit        proto.AuditList
}

func (h *harness) snapshot() snapshot {
	h.t.Helper()
	var s snapshot
	var l proto.DeviceList
	h.mustDo(200, "GET", "/devices", adminToken, "", &l)
	s.Devices = l.Devices
	for _, d := range l.Devices {
		var p proto.DevicePolicy
		h.mustDo(200, "GET", "/devices/"+d.DeviceID+"/policy", adminToken, "", &p)
		s.Policies = append(s.Policies, p)
	}
	h.mustDo(200, "GET", "/tokens", adminToken, "", &s.Operators)
	h.mustDo(200, "GET", "/enrollment-tokens", adminToken, "", &s.EnrollTokens)
	h.mustDo(200, "GET", "/audit?limit=1000", adminToken, "", &s.Audit)
	return s
}

// TestSecurityTable tries each attack on the API and checks both the refusal
// and that nothing changed.
func TestSecurityTable(t *testing.T) {
	h := newTrustHarness(t, nil)
	a, b := h.enroll(), h.enroll()
	pa, pb := "/devices/"+a.DeviceID, "/devices/"+b.DeviceID
	t0 := h.clock.Now()
	h.mustDo(204, "POST", pa+"/report", a.DeviceSecret, reportBody(1, t0, "nonce-a-0000000001"), nil)

	viewer := h.createOperator("vera", proto.RoleViewer)
	expired := h.createEnrollToken(`{"expiresIn":"1m","maxUses":5}`)
	usedUp := h.createEnrollToken(`{"expiresIn":"1h","maxUses":1}`)
	h.enrollWith(usedUp.Token)
	revoked := h.createEnrollToken(`{"expiresIn":"1h"}`)
	h.mustDo(204, "DELETE", "/enrollment-tokens/"+revoked.ID, adminToken, "", nil)
	h.clock.Advance(2 * time.Minute)
	now := h.clock.Now()

	before := h.snapshot()
	enrollBody := `{"model":"Pixel 8"}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		// Wrong, missing and other-device credentials.
		{"policy without credentials", "GET", pa + "/policy", "", "", 401, "unauthorized"},
		{"policy with a wrong secret", "GET", pa + "/policy", "wrong", "", 401, "unauthorized"},
		{"report without credentials", "POST", pa + "/report", "", reportBody(1, now, "nonce-a-0000000002"), 401, "unauthorized"},
		{"report with a wrong secret", "POST", pa + "/report", "wrong", reportBody(1, now, "nonce-a-0000000002"), 401, "unauthorized"},
		{"operator list with a wrong token", "GET", "/devices", "wrong", "", 401, "unauthorized"},
		{"audit without credentials", "GET", "/audit", "", "", 401, "unauthorized"},
		// A device reading or changing another device.
		{"device reads another's policy", "GET", pb + "/policy", a.DeviceSecret, "", 403, "forbidden"},
		{"device reads another's status", "GET", pb + "/status", a.DeviceSecret, "", 403, "forbidden"},
		{"device reports for another", "POST", pb + "/report", a.DeviceSecret, reportBody(1, now, "nonce-b-0000000001"), 403, "forbidden"},
		{"device registers a token for another", "POST", pb + "/token", a.DeviceSecret, `{"fcmToken":"x"}`, 403, "forbidden"},
		{"device edits another's policy", "PUT", pb + "/policy", a.DeviceSecret, `{"cameraDisabled":true}`, 403, "forbidden"},
		{"device deletes another", "DELETE", pb, a.DeviceSecret, "", 403, "forbidden"},
		{"device creates an operator token", "POST", "/tokens", a.DeviceSecret, `{"name":"x","role":"admin"}`, 403, "forbidden"},
		{"device reads the audit log", "GET", "/audit", a.DeviceSecret, "", 403, "forbidden"},
		// Replays.
		{"replayed report (same nonce)", "POST", pa + "/report", a.DeviceSecret, reportBody(1, t0, "nonce-a-0000000001"), 409, "replayed_nonce"},
		{"old report (fresh nonce)", "POST", pa + "/report", a.DeviceSecret, reportBody(1, t0.Add(-time.Second), "nonce-a-0000000003"), 409, "stale_report"},
		{"report from the future", "POST", pa + "/report", a.DeviceSecret, reportBody(1, now.Add(10*time.Minute), "nonce-a-0000000004"), 400, "clock_skew"},
		{"report too old for the skew", "POST", pa + "/report", a.DeviceSecret, reportBody(1, now.Add(-10*time.Minute), "nonce-a-0000000005"), 400, "clock_skew"},
		{"report downgraded to no nonce", "POST", pa + "/report", a.DeviceSecret, `{"appliedPolicyVersion":1}`, 400, "nonce_required"},
		{"report with a nonce but no time", "POST", pa + "/report", a.DeviceSecret, `{"appliedPolicyVersion":1,"nonce":"nonce-a-0000000006"}`, 400, "invalid_body"},
		{"report with a short nonce", "POST", pa + "/report", a.DeviceSecret, reportBody(1, now, "x"), 400, "invalid_body"},
		// Enrollment tokens.
		{"enroll without a token", "POST", "/enroll", "", enrollBody, 401, "unauthorized"},
		{"enroll with a wrong token", "POST", "/enroll", "wrong", enrollBody, 401, "unauthorized"},
		{"enroll with an expired token", "POST", "/enroll", expired.Token, enrollBody, 401, "enrollment_token_expired"},
		{"enroll with a used-up token", "POST", "/enroll", usedUp.Token, enrollBody, 401, "enrollment_token_used_up"},
		{"enroll with a revoked token", "POST", "/enroll", revoked.Token, enrollBody, 401, "enrollment_token_revoked"},
		{"enroll with an operator token", "POST", "/enroll", adminToken, enrollBody, 401, "unauthorized"},
		{"enroll with a device secret", "POST", "/enroll", a.DeviceSecret, enrollBody, 401, "unauthorized"},
		// A viewer editing.
		{"viewer edits a policy", "PUT", pa + "/policy", viewer, `{"cameraDisabled":true}`, 403, "forbidden"},
		{"viewer deletes a device", "DELETE", pa, viewer, "", 403, "forbidden"},
		{"viewer creates an operator token", "POST", "/tokens", viewer, `{"name":"mallory","role":"admin"}`, 403, "forbidden"},
		{"viewer deletes an operator token", "DELETE", "/tokens/vera", viewer, "", 403, "forbidden"},
		{"viewer creates an enrollment token", "POST", "/enrollment-tokens", viewer, `{"expiresIn":"1h"}`, 403, "forbidden"},
		{"viewer revokes an enrollment token", "DELETE", "/enrollment-tokens/" + expired.ID, viewer, "", 403, "forbidden"},
		{"viewer reports for a device", "POST", pa + "/report", viewer, reportBody(1, now, "nonce-a-0000000007"), 403, "forbidden"},
		// Bad operator input.
		{"operator token with a bad role", "POST", "/tokens", adminToken, `{"name":"x","role":"root"}`, 400, "invalid_role"},
		{"operator token with a bad name", "POST", "/tokens", adminToken, `{"name":"a b","role":"viewer"}`, 400, "invalid_name"},
		{"operator token with a taken name", "POST", "/tokens", adminToken, `{"name":"vera","role":"admin"}`, 409, "token_exists"},
		{"operator token named admin", "POST", "/tokens", adminToken, `{"name":"admin","role":"admin"}`, 409, "token_exists"},
		{"operator token with an unknown field", "POST", "/tokens", adminToken, `{"name":"x","role":"viewer","token":"chosen"}`, 400, "invalid_body"},
		{"delete the built-in admin", "DELETE", "/tokens/admin", adminToken, "", 409, "builtin_token"},
		{"delete an unknown operator token", "DELETE", "/tokens/nobody", adminToken, "", 404, "token_not_found"},
		{"enrollment token with a bad duration", "POST", "/enrollment-tokens", adminToken, `{"expiresIn":"soon"}`, 400, "invalid_body"},
		{"enrollment token with a negative duration", "POST", "/enrollment-tokens", adminToken, `{"expiresIn":"-1h"}`, 400, "invalid_body"},
		{"enrollment token with negative uses", "POST", "/enrollment-tokens", adminToken, `{"maxUses":-1}`, 400, "invalid_body"},
		{"revoke an unknown enrollment token", "DELETE", "/enrollment-tokens/nothing", adminToken, "", 404, "enrollment_token_not_found"},
		{"revoke a revoked enrollment token", "DELETE", "/enrollment-tokens/" + revoked.ID, adminToken, "", 404, "enrollment_token_not_found"},
		{"delete an unknown device", "DELETE", "/devices/0000", adminToken, "", 404, "device_not_found"},
		{"audit with a bad cursor", "GET", "/audit?after=x", adminToken, "", 400, "invalid_query"},
		{"audit with a bad limit", "GET", "/audit?limit=0", adminToken, "", 400, "invalid_query"},
		// Oversized bodies.
		{"oversized report", "POST", pa + "/report", a.DeviceSecret, `{"x":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`, 413, "body_too_large"},
		{"oversized operator token", "POST", "/tokens", adminToken, `{"name":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`, 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if after := h.snapshot(); !reflect.DeepEqual(after, before) {
				t.Fatalf("refused request changed state:\nbefore %+v\nafter  %+v", before, after)
			}
			if len(h.bell.all()) != 0 {
				t.Fatal("a refused request rang a bell")
			}
			if n := len(h.sessions.all()); n != 0 {
				t.Fatalf("a refused request closed %d sessions", n)
			}
		})
	}
}

func TestRevokedDevice(t *testing.T) {
	h := newTrustHarness(t, nil)
	a, b := h.enroll(), h.enroll()
	pa := "/devices/" + a.DeviceID
	h.mustDo(204, "POST", pa+"/token", a.DeviceSecret, `{"fcmToken":"fcm-a"}`, nil)
	h.mustDo(204, "DELETE", pa, adminToken, "", nil)
	if got := h.sessions.all(); !reflect.DeepEqual(got, []string{a.DeviceID}) {
		t.Errorf("sessions closed = %v, want [%s]", got, a.DeviceID)
	}
	before := h.snapshot()
	if len(before.Devices) != 1 || before.Devices[0].DeviceID != b.DeviceID {
		t.Fatalf("devices after delete = %+v, want only %s", before.Devices, b.DeviceID)
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"policy", "GET", pa + "/policy", a.DeviceSecret, "", 404, "device_not_found"},
		{"report", "POST", pa + "/report", a.DeviceSecret, reportBody(1, h.clock.Now(), "nonce-a-0000000001"), 404, "device_not_found"},
		{"token", "POST", pa + "/token", a.DeviceSecret, `{"fcmToken":"x"}`, 404, "device_not_found"},
		{"status", "GET", pa + "/status", adminToken, "", 404, "device_not_found"},
		{"delete again", "DELETE", pa, adminToken, "", 404, "device_not_found"},
		{"old secret on another device", "GET", "/devices/" + b.DeviceID + "/policy", a.DeviceSecret, "", 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if after := h.snapshot(); !reflect.DeepEqual(after, before) {
				t.Fatalf("refused request changed state:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	last := before.Audit.Entries[len(before.Audit.Entries)-1]
	if last.Action != "device.delete" || last.Target != a.DeviceID || last.Actor != "admin" || last.RemoteIP != "127.0.0.1" {
		t.Errorf("audit entry = %+v", last)
	}
}

func TestOperatorRoles(t *testing.T) {
	h := newTrustHarness(t, nil)
	d := h.enroll()
	viewer := h.createOperator("vera", proto.RoleViewer)
	ops := h.createOperator("olga", proto.RoleAdmin)

	// A viewer reads everything.
	for _, path := range []string{"/devices", "/devices/" + d.DeviceID + "/status", "/devices/" + d.DeviceID + "/policy", "/tokens", "/enrollment-tokens", "/audit"} {
		h.mustDo(200, "GET", path, viewer, "", nil)
	}
	// A named admin changes things, and the audit log names it.
	h.mustDo(200, "PUT", "/devices/"+d.DeviceID+"/policy", ops, `{"cameraDisabled":true}`, nil)
	var list proto.OperatorTokenList
	h.mustDo(200, "GET", "/tokens", viewer, "", &list)
	if len(list.Tokens) != 2 || list.Tokens[0].Name != "olga" || list.Tokens[0].Token != "" || list.Tokens[1].Role != proto.RoleViewer {
		t.Errorf("token list = %+v", list)
	}
	// Both roles authenticate on MQTT (read-only there).
	if !h.api.AuthenticateOperator(viewer) || !h.api.AuthenticateOperator(ops) || !h.api.AuthenticateOperator(adminToken) || h.api.AuthenticateOperator("wrong") {
		t.Error("AuthenticateOperator does not admit exactly the operator tokens")
	}
	// A deleted token stops working at once.
	h.mustDo(204, "DELETE", "/tokens/vera", ops, "", nil)
	if r := h.do("GET", "/devices", viewer, ""); r.status != 401 {
		t.Errorf("deleted viewer token: %d %s, want 401", r.status, r.body)
	}
	if h.api.AuthenticateOperator(viewer) {
		t.Error("deleted token still authenticates on MQTT")
	}

	var audit proto.AuditList
	h.mustDo(200, "GET", "/audit", adminToken, "", &audit)
	var got []string
	for _, e := range audit.Entries {
		got = append(got, e.Actor+" "+e.Action+" "+e.Target+" "+e.Detail)
	}
	want := []string{
		"admin token.create vera role=viewer",
		"admin token.create olga role=admin",
		"olga policy.update " + d.DeviceID + " cameraDisabled=true",
		"olga token.delete vera ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
	raw, _ := json.Marshal(audit)
	for _, secret := range []string{viewer, ops, adminToken} {
		if strings.Contains(string(raw), secret) {
			t.Error("the audit log holds a secret")
		}
	}
}

func TestEnrollmentTokens(t *testing.T) {
	h := newTrustHarness(t, nil)
	created := h.createEnrollToken(`{"expiresIn":"1h","maxUses":2}`)
	now := h.clock.Now()
	if created.MaxUses != 2 || created.Uses != 0 || created.CreatedBy != "admin" || !created.ExpiresAt.Equal(now.Add(time.Hour)) || !created.CreatedAt.Equal(now) {
		t.Errorf("created = %+v", created)
	}
	def := h.createEnrollToken(`{}`)
	if def.MaxUses != 1 || !def.ExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Errorf("defaults = %+v, want 1 use, 24h", def)
	}
	// Two uses, concurrently with eight more attempts: exactly two enroll.
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.do("POST", "/enroll", created.Token, `{"model":"x"}`)
			statuses[i] = r.status
		}()
	}
	wg.Wait()
	n201 := 0
	for _, s := range statuses {
		switch s {
		case 201:
			n201++
		case 401:
		default:
			t.Errorf("enroll status %d", s)
		}
	}
	if n201 != 2 || h.deviceCount() != 2 {
		t.Errorf("%d enrollments succeeded, %d devices; want 2 and 2", n201, h.deviceCount())
	}
	var list proto.EnrollmentTokenList
	h.mustDo(200, "GET", "/enrollment-tokens", adminToken, "", &list)
	if len(list.Tokens) != 2 {
		t.Fatalf("list = %+v", list)
	}
	for _, tok := range list.Tokens {
		if tok.Token != "" {
			t.Error("the list shows a secret")
		}
		if tok.ID == created.ID && tok.Uses != 2 {
			t.Errorf("uses = %d, want 2", tok.Uses)
		}
	}
	// The static flag token keeps working.
	h.enroll()
}

func TestReportFreshness(t *testing.T) {
	t.Run("capability-1 reports accepted by default", func(t *testing.T) {
		h := newTrustHarness(t, nil)
		d := h.enroll()
		h.mustDo(204, "POST", "/devices/"+d.DeviceID+"/report", d.DeviceSecret, `{"appliedPolicyVersion":1}`, nil)
		h.mustDo(204, "POST", "/devices/"+d.DeviceID+"/report", d.DeviceSecret, `{"appliedPolicyVersion":1}`, nil)
		if st := h.status(d.DeviceID); st.State != proto.StateCompliant {
			t.Errorf("state %s", st.State)
		}
	})
	t.Run("capability-1 reports refused when required", func(t *testing.T) {
		h := newTrustHarness(t, func(c *Config) { c.Trust.RequireReportNonce = true })
		d := h.enroll()
		r := h.do("POST", "/devices/"+d.DeviceID+"/report", d.DeviceSecret, `{"appliedPolicyVersion":1}`)
		if r.status != 400 || r.errCode(t) != "nonce_required" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if st := h.status(d.DeviceID); st.State != proto.StateUnknown {
			t.Errorf("refused report changed the state to %s", st.State)
		}
	})
	t.Run("fresh reports in sequence", func(t *testing.T) {
		h := newTrustHarness(t, func(c *Config) { c.Trust.ReportSkew = time.Minute })
		d := h.enroll()
		p := "/devices/" + d.DeviceID + "/report"
		for i := range 3 {
			h.mustDo(204, "POST", p, d.DeviceSecret, reportBody(1, h.clock.Now().Add(-30*time.Second), fmt.Sprintf("nonce-%012d", i)), nil)
			h.clock.Advance(time.Second)
		}
		r := h.do("POST", p, d.DeviceSecret, reportBody(1, h.clock.Now().Add(-2*time.Minute), "nonce-late-000000"))
		if r.status != 400 || r.errCode(t) != "clock_skew" {
			t.Errorf("report outside a 1m skew: %d %s", r.status, r.body)
		}
	})
}

func TestRateLimits(t *testing.T) {
	h := newTrustHarness(t, func(c *Config) {
		c.Trust.EnrollPerMinute = 3
		c.Trust.DevicePerMinute = 2
	})
	a, b := h.enroll(), h.enroll()
	h.mustDo(401, "POST", "/enroll", "wrong", `{}`, nil) // failures count too
	r := h.do("POST", "/enroll", enrollToken, `{}`)
	if r.status != http.StatusTooManyRequests || r.errCode(t) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("4th enrollment in a minute: %d %v %s, want 429 rate_limited with Retry-After", r.status, r.header, r.body)
	}
	if n := h.deviceCount(); n != 2 {
		t.Errorf("%d devices, want 2", n)
	}
	pa := "/devices/" + a.DeviceID + "/policy"
	h.mustDo(200, "GET", pa, a.DeviceSecret, "", nil)
	h.mustDo(200, "GET", pa, a.DeviceSecret, "", nil)
	r = h.do("GET", pa, a.DeviceSecret, "")
	if r.status != 429 || r.errCode(t) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("3rd request of a device: %d %s", r.status, r.body)
	}
	// Another device has its own budget; operator endpoints are not limited.
	h.mustDo(200, "GET", "/devices/"+b.DeviceID+"/policy", b.DeviceSecret, "", nil)
	h.mustDo(200, "GET", "/devices", adminToken, "", nil)
}

func TestIntegrity(t *testing.T) {
	good := strings.Repeat("ab", 32)
	h := newTrustHarness(t, func(c *Config) { c.Trust.AgentAllowlist = map[string]bool{good: true} })
	report := func(d proto.EnrollResponse, sha string) {
		body := fmt.Sprintf(`{"appliedPolicyVersion":1,"agentSha256":%q}`, sha)
		h.mustDo(204, "POST", "/devices/"+d.DeviceID+"/report", d.DeviceSecret, body, nil)
	}
	ok, bad, none, never := h.enroll(), h.enroll(), h.enroll(), h.enroll()
	report(ok, strings.ToUpper(good))
	report(bad, strings.Repeat("cd", 32))
	report(none, "")
	for _, tt := range []struct {
		d    proto.EnrollResponse
		want proto.Integrity
	}{{ok, proto.IntegrityOK}, {bad, proto.IntegrityUnknownBinary}, {none, proto.IntegrityUnreported}, {never, proto.IntegrityUnreported}} {
		if got := h.status(tt.d.DeviceID).Integrity; got != tt.want {
			t.Errorf("integrity = %s, want %s", got, tt.want)
		}
	}
	unchecked := newTrustHarness(t, nil)
	d := unchecked.enroll()
	if got := unchecked.status(d.DeviceID).Integrity; got != proto.IntegrityUnchecked {
		t.Errorf("without an allowlist integrity = %s, want unchecked", got)
	}
}

func TestLoadAllowlist(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("0a", 32)
	write := func(name, s string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := LoadAllowlist(write("ok", "# approved agents\n\n"+strings.ToUpper(good)+"  # v0.2.0\n"))
	if err != nil || len(m) != 1 || !m[good] {
		t.Errorf("LoadAllowlist = %v, %v", m, err)
	}
	if _, err := LoadAllowlist(write("bad", "not-a-hash\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: %v, want an error naming line 1", err)
	}
	if _, err := LoadAllowlist(dir + "/missing"); err == nil {
		t.Error("missing file: no error")
	}
}

func TestOversizedHeaders(t *testing.T) {
	h := newTrustHarness(t, nil)
	before := h.snapshot()
	r := h.do("POST", "/tokens", adminToken, `{"name":"x","role":"viewer"}`, "X-Big", strings.Repeat("x", 9000))
	if r.status != http.StatusRequestHeaderFieldsTooLarge || r.errCode(t) != "request_header_fields_too_large" {
		t.Fatalf("got %d %s, want 431", r.status, r.body)
	}
	if after := h.snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatal("a refused request changed state")
	}
}
