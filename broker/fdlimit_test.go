package broker_test

import (
	"syscall"
	"testing"

	"github.com/doorbell-mdm/doorbell/broker"
)

// TestConnectionLimitFollowsFileLimit: the default MQTT connection cap is
// below the process's file limit, so it acts before accept runs out of
// descriptors (issue 17, finding 4). Not parallel: it lowers the limit of
// the whole test process for its duration.
func TestConnectionLimitFollowsFileLimit(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restoring the file limit: %v", err)
		}
	})
	for _, tt := range []struct {
		name       string
		configured int
	}{{"default", 0}, {"configured above the file limit", 100_000}} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := broker.New(newCreds(), broker.Config{Addr: "127.0.0.1:0", MaxConnections: tt.configured})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got := b.MaxConnections()
			t.Logf("file limit %d: MQTT connection limit %d", low.Cur, got)
			if got <= 0 || got >= int(low.Cur) {
				t.Errorf("MQTT connection limit %d with a file limit of %d; want a positive cap below it", got, low.Cur)
			}
		})
	}
	b, err := broker.New(newCreds(), broker.Config{Addr: "127.0.0.1:0", MaxConnections: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.MaxConnections(); got != 100 {
		t.Errorf("a configured limit below the file limit became %d, want 100", got)
	}
}
