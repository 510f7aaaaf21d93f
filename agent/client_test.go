package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

func TestAPIError(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantCode    string
		wantMessage string
		is          func(error) bool
		temporary   bool
	}{
		{name: "contract 404", status: 404, body: `{"error":{"code":"not_found","message":"unknown device"}}`,
			wantCode: "not_found", wantMessage: "unknown device", is: IsNotFound},
		{name: "contract 401", status: 401, body: `{"error":{"code":"unauthorized","message":"bad secret"}}`,
			wantCode: "unauthorized", wantMessage: "bad secret", is: IsUnauthorized},
		{name: "contract 403", status: 403, body: `{"error":{"code":"forbidden","message":"not yours"}}`,
			wantCode: "forbidden", wantMessage: "not yours", is: IsForbidden},
		{name: "contract 409", status: 409, body: `{"error":{"code":"conflict","message":"future version"}}`,
			wantCode: "conflict", wantMessage: "future version", is: IsConflict},
		{name: "plain text 502", status: 502, body: "Bad Gateway\n", wantMessage: "Bad Gateway",
			is: func(err error) bool { return StatusOf(err) == 502 }, temporary: true},
		{name: "empty 503", status: 503, body: "",
			is: func(err error) bool { return StatusOf(err) == 503 }, temporary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c, err := NewClient(srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Report(t.Context(), Credentials{DeviceID: "d1", Secret: "s"}, proto.ComplianceReport{})
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if ae.Status != tt.status || ae.Code != tt.wantCode || ae.Message != tt.wantMessage {
				t.Errorf("APIError = %+v, want status %d code %q message %q", ae, tt.status, tt.wantCode, tt.wantMessage)
			}
			if !tt.is(err) {
				t.Errorf("helper does not recognise %v", err)
			}
			if ae.Temporary() != tt.temporary {
				t.Errorf("Temporary = %v, want %v", ae.Temporary(), tt.temporary)
			}
		})
	}
}

func TestClientRequests(t *testing.T) {
	type seen struct{ method, path, auth, inm string }
	got := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Header.Get("If-None-Match")}
		switch {
		case r.URL.Path == "/enroll":
			w.WriteHeader(201)
			fmt.Fprint(w, `{"deviceId":"a/b","deviceSecret":"sec","policy":{"version":1},"mqtt":{"url":"tcp://h:1883","topic":"t"}}`)
		case r.Header.Get("If-None-Match") == `"4"`:
			w.Header().Set("ETag", `"4"`)
			w.WriteHeader(304)
		case r.Method == "GET":
			w.Header().Set("ETag", `"4"`)
			fmt.Fprint(w, `{"version":4,"cameraDisabled":true}`)
		default:
			w.WriteHeader(204)
		}
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Enroll(t.Context(), "tok", proto.EnrollRequest{Model: "m"})
	if err != nil || resp.DeviceID != "a/b" || resp.MQTT.URL != "tcp://h:1883" {
		t.Fatalf("Enroll = %+v, %v", resp, err)
	}
	if s := <-got; s != (seen{"POST", "/enroll", "Bearer tok", ""}) {
		t.Errorf("enroll request = %+v", s)
	}
	cred := Credentials{DeviceID: resp.DeviceID, Secret: resp.DeviceSecret}
	pr, err := c.Policy(t.Context(), cred, "")
	if err != nil || pr.NotModified || pr.ETag != `"4"` || !reflect.DeepEqual(pr.Policy, proto.DevicePolicy{Version: 4, Settings: proto.Settings{CameraDisabled: true}}) {
		t.Fatalf("Policy = %+v, %v", pr, err)
	}
	if s := <-got; s != (seen{"GET", "/devices/a%2Fb/policy", "Bearer sec", ""}) {
		t.Errorf("policy request = %+v", s)
	}
	pr, err = c.Policy(t.Context(), cred, pr.ETag)
	if err != nil || !pr.NotModified || pr.ETag != `"4"` {
		t.Fatalf("conditional Policy = %+v, %v", pr, err)
	}
	if s := <-got; s.inm != `"4"` {
		t.Errorf("If-None-Match = %q", s.inm)
	}
	if err := c.RegisterToken(t.Context(), cred, "fcm"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != (seen{"POST", "/devices/a%2Fb/token", "Bearer sec", ""}) {
		t.Errorf("token request = %+v", s)
	}
}

func TestEnrollRejectsEmptyIdentity(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		fmt.Fprint(w, `{"deviceId":"","deviceSecret":""}`)
	}))
	defer srv.Close()
	c, _ := NewClient(srv.URL, nil)
	if _, err := c.Enroll(t.Context(), "tok", proto.EnrollRequest{}); err == nil {
		t.Fatal("Enroll with an empty answer = nil error")
	}
}
