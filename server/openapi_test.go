package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/doorbell-mdm/doorbell/proto"
)

// apiCase is one real request and the status it must get. Both the request
// (when reqValid) and the answer are validated against server/openapi.json.
type apiCase struct {
	name     string
	method   string
	path     string // {dev}, {other} are replaced by enrolled device ids
	token    string // "admin", "enroll", "dev", "other", "" or a literal
	body     string
	header   map[string]string
	status   int
	reqValid bool // false: the document must reject the request too
}

// tooLarge marks a body over the size limit, which OpenAPI cannot express:
// its request is not validated, only the 413 answer.
func (c apiCase) tooLarge() bool { return len(c.body) > proto.MaxBodyBytes }

// short keeps a validation error readable.
func short(err error) string {
	s := err.Error()
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// apiCases covers every documented operation and every status it
// documents. A route added to the server must be added here and to the
// document, or TestOpenAPI fails.
func apiCases() []apiCase {
	big := `{"pad":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`
	return []apiCase{
		{"enroll", "POST", "/enroll", "enroll", `{"model":"Pixel 8","osVersion":"14","agentVersion":"0.1.0"}`, nil, 201, true},
		{"enroll with a wrong token", "POST", "/enroll", "nope", `{"model":"x"}`, nil, 401, true},
		{"enroll with a mistyped field", "POST", "/enroll", "enroll", `{"model":5}`, nil, 400, false},
		{"enroll too large", "POST", "/enroll", "enroll", big, nil, 413, true},

		{"register token", "POST", "/devices/{dev}/token", "dev", `{"fcmToken":"fcm-1"}`, nil, 204, true},
		{"register an empty token", "POST", "/devices/{dev}/token", "dev", `{"fcmToken":""}`, nil, 400, false},
		{"register token without credentials", "POST", "/devices/{dev}/token", "", `{"fcmToken":"x"}`, nil, 401, true},
		{"register token for another device", "POST", "/devices/{dev}/token", "other", `{"fcmToken":"x"}`, nil, 403, true},
		{"register token of an unknown device", "POST", "/devices/nope/token", "dev", `{"fcmToken":"x"}`, nil, 404, true},
		{"register token too large", "POST", "/devices/{dev}/token", "dev", big, nil, 413, true},

		{"get policy as the device", "GET", "/devices/{dev}/policy", "dev", "", nil, 200, true},
		{"get policy as an operator", "GET", "/devices/{dev}/policy", "admin", "", nil, 200, true},
		{"get policy not modified", "GET", "/devices/{dev}/policy", "dev", "", map[string]string{"If-None-Match": `"1"`}, 304, true},
		{"get policy with a wrong token", "GET", "/devices/{dev}/policy", "nope", "", nil, 401, true},
		{"get another device's policy", "GET", "/devices/{dev}/policy", "other", "", nil, 403, true},
		{"get policy of an unknown device", "GET", "/devices/nope/policy", "admin", "", nil, 404, true},

		{"edit policy", "PUT", "/devices/{dev}/policy", "admin", `{"cameraDisabled":true}`, nil, 200, true},
		{"edit policy with an unknown field", "PUT", "/devices/{dev}/policy", "admin", `{"cameraDisabled":true,"cameraDisbled":true}`, nil, 400, false},
		{"edit policy without a setting", "PUT", "/devices/{dev}/policy", "admin", `{}`, nil, 400, false},
		{"edit policy with a wrong token", "PUT", "/devices/{dev}/policy", "nope", `{"cameraDisabled":true}`, nil, 401, true},
		{"edit policy as a device", "PUT", "/devices/{dev}/policy", "dev", `{"cameraDisabled":true}`, nil, 403, true},
		{"edit policy of an unknown device", "PUT", "/devices/nope/policy", "admin", `{"cameraDisabled":true}`, nil, 404, true},
		{"edit policy too large", "PUT", "/devices/{dev}/policy", "admin", big, nil, 413, true},

		{"report", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":2,"cameraDisabled":true,"compliant":true}`, nil, 204, true},
		{"report a version never issued", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":99,"cameraDisabled":true}`, nil, 409, true},
		{"report a negative version", "POST", "/devices/{dev}/report", "dev", `{"appliedPolicyVersion":-1}`, nil, 400, false},
		{"report with a wrong token", "POST", "/devices/{dev}/report", "nope", `{"appliedPolicyVersion":1}`, nil, 401, true},
		{"report for another device", "POST", "/devices/{dev}/report", "other", `{"appliedPolicyVersion":1}`, nil, 403, true},
		{"report of an unknown device", "POST", "/devices/nope/report", "dev", `{"appliedPolicyVersion":1}`, nil, 404, true},
		{"report too large", "POST", "/devices/{dev}/report", "dev", big, nil, 413, true},

		{"list devices", "GET", "/devices", "admin", "", nil, 200, true},
		{"list a page of compliant devices", "GET", "/devices?state=COMPLIANT&limit=1", "admin", "", nil, 200, true},
		{"list with limit 0", "GET", "/devices?limit=0", "admin", "", nil, 400, false},
		{"list an unknown state", "GET", "/devices?state=GREEN", "admin", "", nil, 400, false},
		{"list with a wrong token", "GET", "/devices", "nope", "", nil, 401, true},
		{"list as a device", "GET", "/devices", "dev", "", nil, 403, true},

		{"status", "GET", "/devices/{dev}/status", "admin", "", nil, 200, true},
		{"status of a device that never reported", "GET", "/devices/{other}/status", "admin", "", nil, 200, true},
		{"status with a wrong token", "GET", "/devices/{dev}/status", "nope", "", nil, 401, true},
		{"status as a device", "GET", "/devices/{dev}/status", "dev", "", nil, 403, true},
		{"status of an unknown device", "GET", "/devices/nope/status", "admin", "", nil, 404, true},

		{"healthz", "GET", "/healthz", "", "", nil, 200, true},
		{"metrics", "GET", "/metrics", "admin", "", nil, 200, true},
		{"metrics with a wrong token", "GET", "/metrics", "nope", "", nil, 401, true},
		{"metrics as a device", "GET", "/metrics", "dev", "", nil, 403, true},
		{"openapi", "GET", "/openapi.json", "", "", nil, 200, true},
	}
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIDocumentsEveryRoute fails for any route the server serves that
// the document does not describe, and for any documented operation the
// server does not serve.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.Info.Version != strconv.Itoa(proto.CapabilityVersion) {
		t.Errorf("info.version %q, want proto.CapabilityVersion %d", doc.Info.Version, proto.CapabilityVersion)
	}
	d, _ := startDaemon(t, DaemonConfig{})
	served := map[string]bool{}
	for _, r := range d.api.App().GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue // fiber adds HEAD to every GET
		}
		p := fiberParam.ReplaceAllString(r.Path, "{$1}")
		served[r.Method+" "+p] = true
		item := doc.Paths.Value(p)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is served but not described in server/openapi.json", r.Method, r.Path)
		}
	}
	for p, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			if !served[m+" "+p] {
				t.Errorf("openapi.json describes %s %s, which the server does not serve", m, p)
			}
		}
	}
	if t.Failed() {
		var keys []string
		for k := range served {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Logf("served routes: %s", strings.Join(keys, ", "))
	}
}

// TestOpenAPIMatchesRealAnswers sends every apiCase to a real daemon and
// validates the request and the answer (status, headers, body) against the
// document; then it checks that every documented status of every operation
// was seen.
func TestOpenAPIMatchesRealAnswers(t *testing.T) {
	doc := loadOpenAPI(t)
	_, url := startDaemon(t, DaemonConfig{})
	doc.Servers = openapi3.Servers{{URL: url}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	var dev, other proto.EnrollResponse
	for _, e := range []*proto.EnrollResponse{&dev, &other} {
		if code, _, b := send(t, "POST", url+"/enroll", enrollToken, `{"model":"m"}`, e); code != 201 {
			t.Fatalf("enroll: %d %s", code, b)
		}
	}
	tokens := map[string]string{"admin": adminToken, "enroll": enrollToken, "dev": dev.DeviceSecret, "other": other.DeviceSecret, "": ""}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	seen := map[string]bool{} // "<operationId> <status>"

	for _, tc := range apiCases() {
		t.Run(tc.name, func(t *testing.T) {
			path := strings.NewReplacer("{dev}", dev.DeviceID, "{other}", other.DeviceID).Replace(tc.path)
			tok, ok := tokens[tc.token]
			if !ok {
				tok = tc.token
			}
			newReq := func() *http.Request {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				req, err := http.NewRequest(tc.method, url+path, body)
				if err != nil {
					t.Fatal(err)
				}
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				return req
			}
			vreq := newReq()
			route, params, err := router.FindRoute(vreq)
			if err != nil {
				t.Fatalf("%s %s is not in the document: %v", tc.method, tc.path, err)
			}
			in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
			reqErr := openapi3filter.ValidateRequest(context.Background(), in)
			switch {
			case tc.tooLarge():
			case tc.reqValid && reqErr != nil:
				t.Fatalf("the document rejects a request the server must accept or answer: %s", short(reqErr))
			case !tc.reqValid && reqErr == nil:
				t.Fatalf("the document accepts a request the server refuses with %d: describe the constraint", tc.status)
			}

			resp, err := http.DefaultClient.Do(newReq())
			// The server may answer 413 and close before the client has
			// written the whole oversized body; the write then fails with
			// a reset. Only that case is retried.
			for i := 0; err != nil && tc.tooLarge() && i < 5; i++ {
				resp, err = http.DefaultClient.Do(newReq())
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			if resp.StatusCode >= 400 {
				var eb proto.ErrorBody
				if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
					t.Fatalf("error body is not {\"error\":{\"code\",\"message\"}}: %s", body)
				}
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts},
				Status:                 resp.StatusCode,
				Header:                 resp.Header,
				Body:                   io.NopCloser(bytes.NewReader(body)),
				Options:                opts,
			}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Fatalf("the answer does not match the document: %s\nbody: %.300s", short(err), body)
			}
			seen[route.Operation.OperationID+" "+strconv.Itoa(resp.StatusCode)] = true
		})
	}

	// Every documented answer of every operation was produced by a real request.
	for p, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if !seen[op.OperationID+" "+status] {
					t.Errorf("%s %s (%s) documents %s but no apiCase produced it", m, p, op.OperationID, status)
				}
			}
		}
	}
}
