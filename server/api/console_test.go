package api

import (
	"strings"
	"testing"
)

// TestConsoleFiles: the console is served without a token (it holds no
// data), with headers that keep injected content from running, and nothing
// outside it is reachable through its routes.
func TestConsoleFiles(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `src="/ui/app.js"`},
		{"/ui/app.js", "text/javascript", "Authorization"},
		{"/ui/catalog.js", "text/javascript", "policyEditBody"},
		{"/ui/style.css", "text/css", "@media"},
		{"/ui/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := h.do("GET", tt.path, "", "")
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), tt.contentType) {
				t.Fatalf("%d %q", r.status, r.header.Get("Content-Type"))
			}
			if !strings.Contains(string(r.body), tt.contains) {
				t.Fatalf("body lacks %q", tt.contains)
			}
			csp := r.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
				r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("security headers missing: %v", r.header)
			}
			etag := r.header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if r := h.do("GET", tt.path, "", "", "If-None-Match", etag); r.status != 304 {
				t.Fatalf("revalidation: %d, want 304", r.status)
			}
		})
	}
	for _, path := range []string{"/ui/nope.js", "/ui/../server.go", "/ui/", "/index.html/"} {
		t.Run(path, func(t *testing.T) {
			r := h.do("GET", path, "", "")
			if r.status != 404 || r.errCode(t) != "not_found" {
				t.Fatalf("%d %s, want 404 not_found", r.status, r.body)
			}
		})
	}
	// The page never inlines code: everything it runs comes from /ui/.
	page := string(h.do("GET", "/", "", "").body)
	if strings.Contains(page, "<script>") || strings.Contains(page, " on") && strings.Contains(page, "onclick") {
		t.Fatal("index.html has inline script")
	}
}
