package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// rawConn is one TCP connection to the harness's server, for requests
// whose body is sent (or not) by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (h *harness) dial() *rawConn {
	h.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	// A safety net only: every answer below comes without waiting for
	// anything the test does not send.
	c.SetDeadline(time.Now().Add(time.Minute))
	return &rawConn{t: h.t, c: c, br: bufio.NewReader(c)}
}

// send writes a request head (and whatever body text follows it).
func (r *rawConn) send(format string, args ...any) {
	r.t.Helper()
	if _, err := fmt.Fprintf(r.c, format, args...); err != nil {
		r.t.Fatal(err)
	}
}

// answer reads one response: its status, error code (if any) and whether
// the server will close the connection after it.
func (r *rawConn) answer() (status int, code string, closing bool) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e proto.ErrorBody
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, resp.Close
}

// TestBodyLimitBeforeReading (issue 17, finding 3): a body is read only up
// to its route's limit, and only once its caller is authenticated. Before
// request bodies were streamed, the server buffered up to 1 MiB of any
// request, from anyone, before the 64 KiB check; these requests send their
// head and only the 8 KiB fasthttp reads ahead, so each answer proves the
// server did not wait for the rest (before, it answered 408 after its read
// timeout).
func TestBodyLimitBeforeReading(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	readAhead := strings.Repeat("x", 8<<10)

	t.Run("declared far above the route's limit: refused unread", func(t *testing.T) {
		c := h.dial()
		c.send("POST /devices/%s/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			e.DeviceID, e.DeviceSecret, proto.MaxBodyBytes+LingerBytes+1, readAhead)
		status, code, closing := c.answer()
		if status != 413 || code != "body_too_large" || !closing {
			t.Fatalf("got %d %q close=%v, want 413 body_too_large and the connection closed", status, code, closing)
		}
	})

	t.Run("slightly over the limit, sent whole: the client reads the 413", func(t *testing.T) {
		r := h.do("POST", "/devices/"+e.DeviceID+"/report", e.DeviceSecret, `{"x":"`+strings.Repeat("x", proto.MaxBodyBytes)+`"}`)
		if r.status != 413 || r.errCode(t) != "body_too_large" {
			t.Fatalf("got %d %s, want 413 body_too_large", r.status, r.body)
		}
	})

	t.Run("within a large route's limit but unauthenticated: refused unread", func(t *testing.T) {
		c := h.dial()
		c.send("PUT /groups/g1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", MaxGroupBodyBytes/2, readAhead)
		status, code, closing := c.answer()
		if status != 401 || code != "unauthorized" || !closing {
			t.Fatalf("got %d %q close=%v, want 401 and the connection closed (the body was never read)", status, code, closing)
		}
	})

	t.Run("chunked past the limit: read up to the limit, refused", func(t *testing.T) {
		c := h.dial()
		c.send("POST /devices/%s/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
			e.DeviceID, e.DeviceSecret)
		chunk := strings.Repeat("x", 16<<10)
		for range proto.MaxBodyBytes/len(chunk) + 1 { // one chunk past the limit, and never a last chunk
			c.send("%x\r\n%s\r\n", len(chunk), chunk)
		}
		status, code, closing := c.answer()
		if status != 413 || code != "body_too_large" || !closing {
			t.Fatalf("got %d %q close=%v, want 413 body_too_large and the connection closed", status, code, closing)
		}
	})

	t.Run("a body larger than the read-ahead keeps the connection", func(t *testing.T) {
		c := h.dial()
		body := `{"cameraDisabled":true}` + strings.Repeat(" ", 40<<10) // past fasthttp's 8 KiB read-ahead
		c.send("PUT /devices/%s/policy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			e.DeviceID, adminToken, len(body), body)
		if status, code, closing := c.answer(); status != 200 || closing {
			t.Fatalf("streamed body: got %d %q close=%v, want 200 and the connection kept", status, code, closing)
		}
		c.send("GET /devices/%s/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", e.DeviceID, adminToken)
		if status, code, closing := c.answer(); status != 200 || closing {
			t.Fatalf("next request on the connection: got %d %q close=%v, want 200 and the connection kept", status, code, closing)
		}
		if !h.policy(e.DeviceID).Settings.CameraDisabled {
			t.Fatal("the streamed policy edit was not applied")
		}
	})
}
