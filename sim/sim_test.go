package sim

import (
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFillPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(101-i)*time.Millisecond) // unsorted on purpose
	}
	var r Result
	fillPercentiles(&r, lat)
	if r.P50Ms != 50 || r.P90Ms != 90 || r.P99Ms != 99 || r.MaxMs != 100 {
		t.Errorf("p50 %v p90 %v p99 %v max %v; want 50 90 99 100", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	}
	r = Result{}
	fillPercentiles(&r, []time.Duration{3 * time.Millisecond})
	if r.P50Ms != 3 || r.P99Ms != 3 || r.MaxMs != 3 {
		t.Errorf("one sample: %+v", r)
	}
}

func TestCheckFiles(t *testing.T) {
	limit, err := fdLimit()
	if err != nil {
		t.Fatal(err)
	}
	ok := Config{Devices: 10, HTTPConns: 8, Mode: ModeMQTT}
	if err := checkFiles(ok); err != nil {
		t.Errorf("10 devices: %v", err)
	}
	tooMany := Config{Devices: int(limit) * 3, HTTPConns: 8, Mode: ModeMQTT}
	err = checkFiles(tooMany)
	if err == nil || !strings.Contains(err.Error(), "--slice") {
		t.Errorf("%d devices with a limit of %d: %v; want advice to use --slice", tooMany.Devices, limit, err)
	}
	// Without MQTT a device holds no socket of its own.
	poll := Config{Devices: int(limit) * 3, HTTPConns: 8, Mode: ModePoll}
	if err := checkFiles(poll); err != nil {
		t.Errorf("poll mode: %v", err)
	}
}

func TestDefaultsRefuseBadInput(t *testing.T) {
	for name, c := range map[string]Config{
		"no tokens":    {ServerURL: "http://x:1", Devices: 1},
		"no devices":   {ServerURL: "http://x:1", EnrollToken: "e", AdminToken: "a"},
		"bad mode":     {ServerURL: "http://x:1", EnrollToken: "e", AdminToken: "a", Devices: 1, Mode: "carrier-pigeon"},
		"bad scenario": {ServerURL: "http://x:1", EnrollToken: "e", AdminToken: "a", Devices: 1, Scenario: "nap"},
		"https, no CA": {ServerURL: "https://x:1", EnrollToken: "e", AdminToken: "a", Devices: 1},
	} {
		if err := c.defaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRSSAndFindListener(t *testing.T) {
	rss, err := rssBytes(0)
	if err != nil || rss <= 0 {
		t.Fatalf("rssBytes(self) = %d, %v", rss, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pid, err := findListener(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if pid != os.Getpid() {
		t.Errorf("findListener = %d, want this process %d", pid, os.Getpid())
	}
}

func TestFCMServerRoutesByToken(t *testing.T) {
	f, err := newFCMServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	got := make(chan map[string]string, 1)
	f.register("tok-1", func(d map[string]string) { got <- d })

	post := func(token string) int {
		body := `{"message":{"token":"` + token + `","data":{"type":"policy_changed","version":"7"}}}`
		resp, err := http.Post(f.Endpoint()+"/projects/sim/messages:send", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("tok-1"); code != http.StatusOK {
		t.Fatalf("known token: %d", code)
	}
	if d := <-got; d["version"] != "7" || d["type"] != "policy_changed" {
		t.Errorf("pushed %v", d)
	}
	if code := post("nobody"); code != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404 (UNREGISTERED)", code)
	}
}

// TestFilesNeededOverTLS: an agent holds its HTTPS connection only while it
// syncs, so 10,000 TLS devices fit in one process of 20,000 files unless
// the whole fleet syncs at once (edit-all, restart).
func TestFilesNeededOverTLS(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		fits     bool
	}{
		{ScenarioIdle, true}, {ScenarioEditOne, true}, {ScenarioReports, true}, {ScenarioEnroll, true},
		{ScenarioEditAll, false}, {ScenarioRestart, false},
	} {
		n := FilesNeeded(10000, 128, 200, ModeMQTT, tc.scenario, true)
		if fits := n <= MaxOpenFiles; fits != tc.fits {
			t.Errorf("%s: %d files for 10,000 TLS devices; fits in %d: %v, want %v", tc.scenario, n, MaxOpenFiles, fits, tc.fits)
		}
		if half := FilesNeeded(5000, 128, 200, ModeMQTT, tc.scenario, true); half > MaxOpenFiles {
			t.Errorf("%s: %d files for 5,000 TLS devices, over %d", tc.scenario, half, MaxOpenFiles)
		}
	}
}
