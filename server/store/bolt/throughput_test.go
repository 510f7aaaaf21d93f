package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// BenchmarkConcurrentWrites measures durable writes per second with 128
// concurrent writers over 10,000 devices: the policy edits of an edit to
// every device, then reports.
func BenchmarkConcurrentWrites(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n, writers = 10000, 128
	ids := make([]string, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range writers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				ids[i] = fmt.Sprintf("%032x", i*7919)
				if _, err := s.CreateDevice(ctx, store.Device{ID: ids[i], SecretHash: []byte(ids[i]), Policy: proto.DevicePolicy{Version: 1}}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	run := func(name string, fn func(id string) error) {
		next.Store(0)
		t := time.Now()
		for range writers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := fn(ids[i]); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		d := time.Since(t)
		b.ReportMetric(float64(n)/d.Seconds(), name+"/s")
	}
	for range b.N {
		run("edits", func(id string) error {
			_, _, err := s.UpdateOverride(ctx, id, func(l store.Layer) store.Layer {
				v := "true"
				if string(l.Values["cameraDisabled"]) == "true" {
					v = "false"
				}
				return store.Layer{Values: proto.SettingValues{"cameraDisabled": json.RawMessage(v)}}
			})
			return err
		})
		run("reports", func(id string) error {
			_, err := s.SaveReport(ctx, id, store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1}})
			return err
		})
	}
}
