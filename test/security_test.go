package test

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// logged reports whether any log line of p contains s.
func (p *proc) logged(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		b, _ := json.Marshal(l)
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// e2eSnapshot is what an attack could change, read through the API.
type e2eSnapshot struct {
	Devices []proto.DeviceStatus
	Tokens  proto.EnrollmentTokenList
	Ops     proto.OperatorTokenList
	Audit   int
}

func (s *serverProc) snapshot() e2eSnapshot {
	s.t.Helper()
	var snap e2eSnapshot
	snap.Devices = s.devices()
	for i, d := range snap.Devices {
		snap.Devices[i].Connected = false // presence is not state an attack changes
		if s.live[d.DeviceID] {
			// A running agent's own requests (its inventory loop, its
			// syncs) move its lastSeenAt at any moment; a device without
			// one keeps it, so a refused request that counted as seen
			// still shows.
			snap.Devices[i].LastSeenAt = nil
		}
	}
	var audit proto.AuditList
	for _, q := range []struct {
		path string
		out  any
	}{{"/enrollment-tokens", &snap.Tokens}, {"/tokens", &snap.Ops}, {"/audit?limit=1000", &audit}} {
		if code, b := s.call("GET", q.path, s.admin, "", q.out); code != 200 {
			s.t.Fatalf("GET %s: %d %s", q.path, code, b)
		}
	}
	snap.Audit = len(audit.Entries)
	return snap
}

func (s *serverProc) mustCall(want int, method, path, token, body string, out any) {
	s.t.Helper()
	if code, b := s.call(method, path, token, body, out); code != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
}

func report(version int64, at time.Time, nonce string) string {
	return fmt.Sprintf(`{"appliedPolicyVersion":%d,"reportedAt":%q,"nonce":%q}`, version, at.UTC().Format(time.RFC3339Nano), nonce)
}

// callPresenting is call with a client that presents certs over TLS.
func (s *serverProc) callPresenting(certs []tls.Certificate, method, path, token, body string) (int, []byte) {
	s.t.Helper()
	saved := s.client
	defer func() { s.client = saved }()
	if certs != nil {
		s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: s.tlsConfig(certs...)}}
	}
	return s.call(method, path, token, body, nil)
}

// mqttClient connects a real paho client; it returns the connect error.
func mqttClient(t *testing.T, s *serverProc, id, user, password string, lost chan<- error) (mqtt.Client, error) {
	t.Helper()
	o := s.mqttOptions().SetClientID(id).
		SetUsername(user).SetPassword(password).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).
		SetProtocolVersion(4)
	if lost != nil {
		o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("MQTT connect %s timed out", id)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func suback(t *testing.T, c mqtt.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, func(mqtt.Client, mqtt.Message) {})
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

// TestSecurity is the trust model's refusal table through the real binary,
// real agents and real paho clients: each row tries an attack and checks the
// refusal and that nothing changed.
func TestSecurity(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")

	var viewer proto.OperatorToken
	srv.mustCall(201, "POST", "/tokens", srv.admin, `{"name":"vera","role":"viewer"}`, &viewer)
	var agentTok, usedUp, revoked, expired proto.EnrollmentToken
	srv.mustCall(201, "POST", "/enrollment-tokens", srv.admin, `{"expiresIn":"1h","maxUses":2}`, &agentTok)
	srv.mustCall(201, "POST", "/enrollment-tokens", srv.admin, `{"expiresIn":"1h","maxUses":1}`, &usedUp)
	srv.mustCall(201, "POST", "/enrollment-tokens", srv.admin, `{"expiresIn":"1h"}`, &revoked)
	srv.mustCall(201, "POST", "/enrollment-tokens", srv.admin, `{"expiresIn":"1ms"}`, &expired)
	srv.mustCall(204, "DELETE", "/enrollment-tokens/"+revoked.ID, srv.admin, "", nil)
	var b proto.EnrollResponse
	srv.mustCall(201, "POST", "/enroll", usedUp.Token, `{"model":"b"}`, &b)

	// A real agent enrolled with an API enrollment token.
	agent := startAgent(t, "agent", srv, t.TempDir(), "--enroll-token", agentTok.Token)
	var aID, aSecret string
	testkit.Eventually(t, 30*time.Second, "the agent to enroll and report", func() bool {
		aID, aSecret = agent.identity()
		return aID != "" && srv.status(aID).State == proto.StateCompliant && srv.status(aID).Connected
	})
	srv.live = map[string]bool{aID: true}
	pa, pb := "/devices/"+aID, "/devices/"+b.DeviceID
	t0 := time.Now()
	srv.mustCall(204, "POST", pb+"/report", b.DeviceSecret, report(1, t0, "nonce-b-0000000001"), nil)
	testkit.Eventually(t, 10*time.Second, "the 1ms enrollment token to expire", func() bool {
		code, body := srv.call("POST", "/enroll", expired.Token, `{}`, nil)
		return code == 401 && strings.Contains(string(body), "enrollment_token_expired")
	})

	t.Run("REST", func(t *testing.T) {
		before := srv.snapshot()
		aCert := agent.certificate()
		if aCert == nil {
			t.Fatal("the agent holds no device certificate")
		}
		tests := []struct {
			name, method, path, token, body string
			status                          int
			code                            string
			certs                           []tls.Certificate
		}{
			{"missing credentials", "GET", pb + "/policy", "", "", 401, "unauthorized", nil},
			{"wrong credentials", "GET", pb + "/policy", "wrong", "", 401, "unauthorized", nil},
			{"other device's credentials", "GET", pb + "/policy", aSecret, "", 403, "forbidden", aCert},
			{"a device's secret without its certificate", "GET", "/devices/" + aID + "/policy", aSecret, "", 401, "client_certificate_required", nil},
			{"a device's certificate on another device", "GET", pb + "/policy", b.DeviceSecret, "", 401, "bad_client_certificate", aCert},
			{"device changes another's report", "POST", pa + "/report", b.DeviceSecret, report(1, time.Now(), "nonce-b-0000000002"), 403, "forbidden", nil},
			{"device edits another's policy", "PUT", pa + "/policy", b.DeviceSecret, `{"cameraDisabled":true}`, 403, "forbidden", nil},
			{"device deletes another", "DELETE", pa, b.DeviceSecret, "", 403, "forbidden", nil},
			{"replayed report", "POST", pb + "/report", b.DeviceSecret, report(1, t0, "nonce-b-0000000001"), 409, "replayed_nonce", nil},
			{"old report", "POST", pb + "/report", b.DeviceSecret, report(1, t0.Add(-time.Second), "nonce-b-0000000003"), 409, "stale_report", nil},
			{"expired enrollment token", "POST", "/enroll", expired.Token, `{}`, 401, "enrollment_token_expired", nil},
			{"used-up enrollment token", "POST", "/enroll", usedUp.Token, `{}`, 401, "enrollment_token_used_up", nil},
			{"revoked enrollment token", "POST", "/enroll", revoked.Token, `{}`, 401, "enrollment_token_revoked", nil},
			{"viewer edits", "PUT", pa + "/policy", viewer.Token, `{"cameraDisabled":true}`, 403, "forbidden", nil},
			{"viewer revokes a device", "DELETE", pa, viewer.Token, "", 403, "forbidden", nil},
			{"viewer creates a token", "POST", "/tokens", viewer.Token, `{"name":"x","role":"admin"}`, 403, "forbidden", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, body := srv.callPresenting(tt.certs, tt.method, tt.path, tt.token, tt.body)
				var e proto.ErrorBody
				json.Unmarshal(body, &e)
				if code != tt.status || e.Error.Code != tt.code || e.Error.Message == "" {
					t.Fatalf("got %d %s, want %d %s", code, body, tt.status, tt.code)
				}
				if after := srv.snapshot(); !reflect.DeepEqual(after, before) {
					t.Fatalf("refused request changed state:\nbefore %+v\nafter  %+v", before, after)
				}
			})
		}
		t.Run("oversized body", func(t *testing.T) {
			// The whole oversized body goes out on a raw connection (TLS
			// when the server runs it) before the answer is read, so the
			// client never races the server's close.
			var conn net.Conn
			var err error
			if cfg := srv.tlsConfig(); cfg != nil {
				conn, err = tls.Dial("tcp", srv.httpAddr, cfg)
			} else {
				conn, err = net.Dial("tcp", srv.httpAddr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			big := `{"x":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`
			fmt.Fprintf(conn, "POST %s/report HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				pb, srv.httpAddr, b.DeviceSecret, len(big), big)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e proto.ErrorBody
			json.Unmarshal(body, &e)
			if resp.StatusCode != 413 || e.Error.Code != "body_too_large" {
				t.Fatalf("got %d %s, want 413 body_too_large", resp.StatusCode, body)
			}
			if after := srv.snapshot(); !reflect.DeepEqual(after, before) {
				t.Fatalf("refused request changed state:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	})

	t.Run("MQTT", func(t *testing.T) {
		// The viewer watches every doorbell (operators are read-only).
		watched := make(chan string, 10)
		watcher, err := mqttClient(t, srv, "watcher", "operator", viewer.Token, nil)
		if err != nil {
			t.Fatalf("viewer MQTT login refused: %v", err)
		}
		tok := watcher.Subscribe(proto.PolicyChangedWildcard, 1, func(_ mqtt.Client, m mqtt.Message) {
			watched <- m.Topic() + " " + string(m.Payload())
		})
		if !tok.WaitTimeout(15*time.Second) || tok.(*mqtt.SubscribeToken).Result()[proto.PolicyChangedWildcard] >= 0x80 {
			t.Fatal("viewer may not watch doorbells")
		}

		dev, err := mqttClient(t, srv, b.DeviceID, b.DeviceID, b.DeviceSecret, nil)
		if err != nil {
			t.Fatalf("device login: %v", err)
		}
		for _, filter := range []string{proto.PolicyChangedTopic(aID), proto.PolicyChangedWildcard, "#", "devices/" + aID + "/#"} {
			if code := suback(t, dev, filter); code < 0x80 {
				t.Errorf("device subscribed to %s (SUBACK %#x), want refused", filter, code)
			}
		}
		forged := `{"type":"policy_changed","version":99}`
		dev.Publish(proto.PolicyChangedTopic(aID), 0, false, forged).WaitTimeout(5 * time.Second)
		dev.Publish(proto.PolicyChangedTopic(b.DeviceID), 0, false, forged).WaitTimeout(5 * time.Second)
		// mochi handles one client's packets in order: once this SUBACK is
		// back, both publishes have been processed.
		if code := suback(t, dev, proto.PolicyChangedTopic(b.DeviceID)); code >= 0x80 {
			t.Fatalf("device may not subscribe to its own topic: %#x", code)
		}
		p := srv.setCamera(b.DeviceID, true) // a real doorbell, after the forged ones
		select {
		case got := <-watched:
			if want := proto.PolicyChangedTopic(b.DeviceID) + " " + fmt.Sprintf(`{"type":"policy_changed","version":%d}`, p.Version); got != want {
				t.Fatalf("watcher first saw %q, want only the real doorbell %q", got, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the viewer saw no doorbell")
		}
	})

	t.Run("revoked device over MQTT", func(t *testing.T) {
		lost := make(chan error, 1)
		// B's own MQTT session (a fresh client id takes over the old one).
		if _, err := mqttClient(t, srv, b.DeviceID, b.DeviceID, b.DeviceSecret, lost); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "B connected", func() bool { return srv.status(b.DeviceID).Connected })
		srv.mustCall(204, "DELETE", pb, srv.admin, "", nil)
		select {
		case <-lost:
		case <-time.After(15 * time.Second):
			t.Fatal("the revoked device's MQTT session stayed open")
		}
		if _, err := mqttClient(t, srv, b.DeviceID, b.DeviceID, b.DeviceSecret, nil); err == nil {
			t.Fatal("the revoked device logged in again")
		}
		if code, _ := srv.call("GET", pb+"/policy", b.DeviceSecret, "", nil); code != 404 {
			t.Errorf("revoked device over REST: %d, want 404", code)
		}
	})

	t.Run("revoked agent re-enrolls only with a valid token", func(t *testing.T) {
		srv.mustCall(204, "DELETE", pa, srv.admin, "", nil)
		if code, _ := srv.call("GET", pa+"/policy", aSecret, "", nil); code != 404 {
			t.Errorf("revoked agent over REST: %d, want 404", code)
		}
		// The broker closes its session, its login is refused, it syncs,
		// gets 404 and enrolls again with the token's second use.
		var newID string
		testkit.Eventually(t, 60*time.Second, "the agent to re-enroll", func() bool {
			newID, _ = agent.identity()
			return newID != "" && newID != aID && srv.status(newID).State == proto.StateCompliant
		})
		var l proto.EnrollmentTokenList
		srv.mustCall(200, "GET", "/enrollment-tokens", srv.admin, "", &l)
		for _, tk := range l.Tokens {
			if tk.ID == agentTok.ID && tk.Uses != 2 {
				t.Errorf("agent token uses = %d, want 2", tk.Uses)
			}
		}
		// Revoked again, the used-up token lets it in no more.
		srv.mustCall(204, "DELETE", "/devices/"+newID, srv.admin, "", nil)
		testkit.Eventually(t, 60*time.Second, "the agent's refused re-enrollment", func() bool {
			return agent.logged("enrollment_token_used_up")
		})
		for _, d := range srv.devices() {
			if d.DeviceID != b.DeviceID && d.DeviceID != aID && d.DeviceID != newID {
				t.Errorf("an unexpected device %s was enrolled", d.DeviceID)
			}
		}
	})

	// Every change above is in the audit log, attributed and without secrets.
	var audit proto.AuditList
	srv.mustCall(200, "GET", "/audit", viewer.Token, "", &audit)
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	want := []string{"admin token.create", "admin enrollment_token.create", "admin enrollment_token.create",
		"admin enrollment_token.create", "admin enrollment_token.create", "admin enrollment_token.revoke",
		"admin policy.update", "admin device.delete", "admin device.delete", "admin device.delete"}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("audit = %q, want %q", actions, want)
	}
	raw, _ := json.Marshal(audit)
	for _, secret := range []string{srv.admin, viewer.Token, agentTok.Token, b.DeviceSecret} {
		if strings.Contains(string(raw), secret) {
			t.Error("the audit log holds a secret")
		}
	}
}

// TestAgentIntegrity runs a server with an allowlist holding the hash of the
// doorbell binary under test: the real agent, hashing its own executable,
// is "ok"; a device reporting another hash is "unknown_binary".
func TestAgentIntegrity(t *testing.T) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	allow := filepath.Join(t.TempDir(), "allow.txt")
	if err := os.WriteFile(allow, []byte("# the binary under test\n"+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--agent-allowlist", allow)
	agent := startAgent(t, "agent", srv, t.TempDir())
	var id string
	testkit.Eventually(t, 30*time.Second, "the agent to report", func() bool {
		id, _ = agent.identity()
		return id != "" && srv.status(id).LastReportAt != nil
	})
	if got := srv.status(id).Integrity; got != proto.IntegrityOK {
		t.Errorf("real agent integrity = %s, want ok", got)
	}

	var other proto.EnrollResponse
	srv.mustCall(201, "POST", "/enroll", srv.enroll, `{}`, &other)
	if got := srv.status(other.DeviceID).Integrity; got != proto.IntegrityUnreported {
		t.Errorf("never reported: integrity = %s, want unreported", got)
	}
	body := fmt.Sprintf(`{"appliedPolicyVersion":1,"agentSha256":%q}`, strings.Repeat("0", 64))
	srv.mustCall(204, "POST", "/devices/"+other.DeviceID+"/report", other.DeviceSecret, body, nil)
	if got := srv.status(other.DeviceID).Integrity; got != proto.IntegrityUnknownBinary {
		t.Errorf("unknown hash: integrity = %s, want unknown_binary", got)
	}
}
