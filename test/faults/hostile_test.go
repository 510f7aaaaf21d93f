package faults

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// rawCall posts body with headers and returns the status (0 on a transport
// error, which a server that cut the connection answers).
func (s *server) rawCall(method, path, token, encoding string, body []byte) int {
	req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// peakRSS is the server process's peak resident memory, in bytes.
func (s *server) peakRSS() int64 {
	s.t.Helper()
	pid := s.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		s.t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	s.t.Fatal("no VmHWM")
	return 0
}

// TestHostileBodies: decompression bombs (two gzip layers, and one layer
// whose compressed size is within the limit), fields past the limit once
// decoded, oversized and malformed bodies are refused with a clear status,
// change nothing, and leave the server's memory bounded (issue 17,
// finding 1).
func TestHostileBodies(t *testing.T) {
	s := startServer(t, t.TempDir())
	creds := s.enroll(1)
	dev := creds[0]
	zeros := make([]byte, 256<<20)
	bomb1 := gzipped(zeros)
	bomb2 := gzipped(bomb1)
	zeros = nil
	longModel := gzipped([]byte(`{"model":"` + strings.Repeat("m", 70<<10) + `","osVersion":"14","agentVersion":"1"}`))
	before := s.peakRSS()
	for _, tt := range []struct {
		name, method, path, token, encoding string
		body                                []byte
		want                                []int
	}{
		{"enroll, gzip, gzip bomb", "POST", "/enroll", enrollToken, "gzip, gzip", bomb2, []int{413, 415}},
		{"report, gzip, gzip bomb", "POST", "/devices/" + dev.DeviceID + "/report", dev.Secret, "gzip, gzip", bomb2, []int{413, 415}},
		{"report, one-layer bomb", "POST", "/devices/" + dev.DeviceID + "/report", dev.Secret, "gzip", bomb1[:min(len(bomb1), 60<<10)], []int{400, 413}},
		{"enroll, 70 KiB model once decoded", "POST", "/enroll", enrollToken, "gzip", longModel, []int{413}},
		{"policy edit, 1 MiB body", "PUT", "/devices/" + dev.DeviceID + "/policy", adminToken, "", bytes.Repeat([]byte(" "), 1<<20), []int{413}},
		{"report, malformed JSON", "POST", "/devices/" + dev.DeviceID + "/report", dev.Secret, "", []byte(`{"appliedPolicyVersion":`), []int{400}},
		{"report, unsupported encoding", "POST", "/devices/" + dev.DeviceID + "/report", dev.Secret, "br", []byte(`{}`), []int{415}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			got := s.rawCall(tt.method, tt.path, tt.token, tt.encoding, tt.body)
			t.Logf("%d-byte body (%s): %d in %v", len(tt.body), tt.encoding, got, time.Since(t0))
			ok := false
			for _, w := range tt.want {
				ok = ok || got == w
			}
			if !ok {
				t.Errorf("status %d, want one of %v", got, tt.want)
			}
		})
	}
	after := s.peakRSS()
	t.Logf("server peak RSS: %d MiB before, %d MiB after the hostile bodies", before>>20, after>>20)
	if after-before > 128<<20 {
		t.Errorf("peak RSS grew by %d MiB: a body was inflated or buffered unbounded", (after-before)>>20)
	}
	var list struct{ Devices []any }
	s.mustCall("GET", "/devices", adminToken, "", 200, &list)
	if len(list.Devices) != 1 {
		t.Errorf("%d devices after refused enrollments, want 1", len(list.Devices))
	}
	if !s.serves() {
		t.Error("the server stopped serving")
	}
}

// TestUnauthenticatedCannotLockDeviceOut: requests that name a device but
// do not authenticate as it do not spend its rate budget, and a flood of
// invented ids leaves the server serving (issue 17, finding 3).
func TestUnauthenticatedCannotLockDeviceOut(t *testing.T) {
	s := startServer(t, t.TempDir(), withArgs("--device-rate", "20"))
	creds := s.enroll(1)
	dev := creds[0]
	for range 100 {
		s.rawCall("GET", "/devices/"+dev.DeviceID+"/policy", "not-the-secret", "", nil)
		s.rawCall("POST", "/devices/"+dev.DeviceID+"/report", "", "", []byte(`{}`))
	}
	for i := range 2000 {
		s.rawCall("GET", fmt.Sprintf("/devices/invented-%d/policy", i), "x", "", nil)
	}
	if code := s.rawCall("GET", "/devices/"+dev.DeviceID+"/policy", dev.Secret, "", nil); code != 200 {
		t.Errorf("the device's own policy call answered %d after 200 unauthenticated calls naming it; want 200", code)
	}
	// Its own budget still applies.
	limited := false
	for range 30 {
		if s.rawCall("GET", "/devices/"+dev.DeviceID+"/policy", dev.Secret, "", nil) == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("the device's own calls are not rate limited at --device-rate 20")
	}
}

// TestRevokedOperatorCutOff: deleting an operator token closes its open
// /events stream and its MQTT session at once (issue 17, finding 2).
func TestRevokedOperatorCutOff(t *testing.T) {
	s := startServer(t, t.TempDir())
	creds := s.enroll(1)
	var tok struct{ Token string }
	s.mustCall("POST", "/tokens", adminToken, `{"name":"watcher","role":"viewer"}`, 201, &tok)

	req, _ := http.NewRequest("GET", s.url+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	streamEnded := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(streamEnded) }()

	lost := make(chan struct{}, 1)
	o := paho.NewClientOptions().AddBroker("tcp://" + s.mqtt).SetClientID("watcher").SetUsername("operator").
		SetPassword(tok.Token).SetAutoReconnect(false).
		SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} })
	mc := paho.NewClient(o)
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	defer mc.Disconnect(0)

	t0 := time.Now()
	s.mustCall("DELETE", "/tokens/watcher", adminToken, "", 204, nil)
	for name, ch := range map[string]chan struct{}{"the /events stream": streamEnded, "the MQTT session": lost} {
		select {
		case <-ch:
			t.Logf("%s closed %v after the token was deleted", name, time.Since(t0))
		case <-time.After(5 * time.Second):
			t.Errorf("%s still open 5s after the token was deleted", name)
		}
	}
	s.mustCall("PUT", "/devices/"+creds[0].DeviceID+"/policy", adminToken, `{"cameraDisabled":true}`, 200, nil)
}

// TestFullDisk: with the file unable to grow (the file size limit stands in
// for a full disk), writes answer 507 with a clear code, /healthz reports
// unhealthy, reads still work, and nothing acknowledged is lost (issue 17,
// finding 10).
func TestFullDisk(t *testing.T) {
	s := startServer(t, t.TempDir(), withLimit("--fsize=1048576"))
	var failed int
	var acked []string
	for i := range 5000 {
		var resp struct{ DeviceID string }
		code, b, err := s.call("POST", "/enroll", enrollToken, fmt.Sprintf(`{"model":"full-%d","osVersion":"14","agentVersion":"1"}`, i), &resp)
		if err != nil {
			t.Fatal(err)
		}
		if code == 201 || code == 200 {
			acked = append(acked, resp.DeviceID)
			continue
		}
		failed = code
		t.Logf("after %d enrollments: %d %s", len(acked), code, b)
		break
	}
	if failed != 507 {
		t.Errorf("a write with the disk full answered %d, want 507", failed)
	}
	code, b, _ := s.call("GET", "/healthz", "", "", nil)
	t.Logf("healthz: %d %s", code, b)
	if code != 503 {
		t.Errorf("/healthz = %d with the disk full, want 503", code)
	}
	for _, id := range acked[max(0, len(acked)-50):] {
		s.status(id) // reads still work, and the last acknowledged enrollments are there
	}
}
