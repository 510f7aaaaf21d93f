package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// acked is what the server acknowledged, per device: the newest edit's
// version and value, and the newest report's applied version.
type acked struct {
	mu      sync.Mutex
	edit    map[string]proto.DevicePolicy
	applied map[string]int64
	n       atomic.Int64
}

// TestKill9DuringWrites: policy edits and reports run against the server
// while it is killed with SIGKILL, three times; after each restart every
// acknowledged edit and report is there (a write in flight at the kill may
// or may not be).
func TestKill9DuringWrites(t *testing.T) {
	const devices, writers, cycles = 20, 4, 3
	s := startServer(t, t.TempDir())
	creds := s.enroll(devices)
	a := &acked{edit: map[string]proto.DevicePolicy{}, applied: map[string]int64{}}
	rng := rand.New(rand.NewPCG(17, 17))
	for cycle := range cycles {
		killAfter := int64(40 + rng.IntN(60))
		start := a.n.Load()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				write(s, creds, a, w, stop)
			}()
		}
		testkit.Eventually(t, 30*time.Second, "writes acknowledged before the kill", func() bool { return a.n.Load()-start >= killAfter })
		s.kill()
		close(stop)
		wg.Wait()
		t0 := time.Now()
		s = s.restart()
		t.Logf("cycle %d: killed after %d acknowledged writes; restarted in %v", cycle, a.n.Load()-start, time.Since(t0))
		verify(t, s, a)
	}
}

// write edits and reports on random devices until stop or the first
// transport error (the server was killed), recording what was
// acknowledged.
func write(s *server, creds []agent.Credentials, a *acked, w int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(w), 99))
	dc := s.deviceClient()
	for {
		select {
		case <-stop:
			return
		default:
		}
		c := creds[rng.IntN(len(creds))]
		if rng.IntN(2) == 0 {
			var p proto.DevicePolicy
			code, _, err := s.call("PUT", "/devices/"+c.DeviceID+"/policy", adminToken,
				fmt.Sprintf(`{"cameraDisabled":%v}`, rng.IntN(2) == 0), &p)
			if err != nil {
				return
			}
			if code == 200 {
				a.mu.Lock()
				if p.Version > a.edit[c.DeviceID].Version {
					a.edit[c.DeviceID] = p
				}
				a.mu.Unlock()
				a.n.Add(1)
			}
			continue
		}
		a.mu.Lock()
		v := a.edit[c.DeviceID].Version
		a.mu.Unlock()
		if v == 0 {
			continue
		}
		err := dc.Report(context.Background(), c, proto.ComplianceReport{AppliedPolicyVersion: v})
		if err != nil {
			if strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset") {
				return
			}
			continue // e.g. a report refused as stale: not acknowledged
		}
		a.mu.Lock()
		if v > a.applied[c.DeviceID] {
			a.applied[c.DeviceID] = v
		}
		a.mu.Unlock()
		a.n.Add(1)
	}
}

// verify checks every acknowledged write against the restarted server.
func verify(t *testing.T, s *server, a *acked) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, p := range a.edit {
		st := s.status(id)
		if st.DesiredVersion < p.Version {
			t.Errorf("device %s: desired version %d after restart, but version %d was acknowledged", id, st.DesiredVersion, p.Version)
		}
		if st.DesiredVersion == p.Version {
			var got proto.DevicePolicy
			s.mustCall("GET", "/devices/"+id+"/policy", adminToken, "", 200, &got)
			if got.CameraDisabled != p.CameraDisabled {
				t.Errorf("device %s: version %d has cameraDisabled %v, acknowledged %v", id, p.Version, got.CameraDisabled, p.CameraDisabled)
			}
		}
		if st.AppliedVersion < a.applied[id] {
			t.Errorf("device %s: applied version %d after restart, but a report of %d was acknowledged", id, st.AppliedVersion, a.applied[id])
		}
	}
}

// TestRestartWithConnectedAgents: real agents connected over HTTP and MQTT
// get through a SIGTERM restart and a SIGKILL restart, and converge on an
// edit made after each.
func TestRestartWithConnectedAgents(t *testing.T) {
	const n = 3
	s := startServer(t, t.TempDir())
	var agents []*agentProc
	for i := range n {
		agents = append(agents, startAgent(t, s, filepath.Join(t.TempDir(), fmt.Sprintf("agent-%d", i))))
	}
	testkit.Eventually(t, 30*time.Second, "agents enrolled", func() bool {
		for _, a := range agents {
			if a.id() == "" {
				return false
			}
		}
		return true
	})
	for round, how := range []string{"SIGTERM", "SIGKILL"} {
		if how == "SIGTERM" {
			s.cmd.Process.Signal(os.Interrupt)
			<-s.exited
		} else {
			s.kill()
		}
		s = s.restart()
		testkit.Eventually(t, 60*time.Second, "agents connected over MQTT again", func() bool {
			for _, a := range agents {
				if !s.status(a.id()).Connected {
					return false
				}
			}
			return true
		})
		t0 := time.Now()
		for _, a := range agents {
			s.mustCall("PUT", "/devices/"+a.id()+"/policy", adminToken, fmt.Sprintf(`{"cameraDisabled":%v}`, round == 0), 200, nil)
		}
		testkit.Eventually(t, 60*time.Second, "agents compliant with the edit after the restart", func() bool {
			for _, a := range agents {
				st := s.status(a.id())
				if st.State != proto.StateCompliant || st.AppliedVersion != st.DesiredVersion {
					return false
				}
			}
			return true
		})
		t.Logf("after a %s restart: %d agents compliant %v after the edit", how, n, time.Since(t0))
	}
}
