package postgres_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/server/pki"
)

// TestSharedPKI: replicas starting together on one database create one CA
// and one server certificate; when one renews, the others adopt it.
func TestSharedPKI(t *testing.T) {
	url := migrated(t)
	sa, sb := open(t, url), open(t, url)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := func(files pki.Files) pki.Config {
		return pki.Config{Files: files, Hosts: []string{"localhost"}, ServerCertTTL: 3 * time.Hour, Now: clock}
	}
	var a, b *pki.Authority
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { a, errA = pki.Open(cfg(sa.PKIFiles())) })
	wg.Go(func() { b, errB = pki.Open(cfg(sb.PKIFiles())) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if a.Pin() != b.Pin() || !bytes.Equal(a.CAPEM(), b.CAPEM()) {
		t.Fatalf("two CAs: pins %s and %s", a.Pin(), b.Pin())
	}
	if !bytes.Equal(a.Certificate().Certificate[0], b.Certificate().Certificate[0]) {
		t.Fatal("two server certificates")
	}
	first := a.Certificate().Certificate[0]

	// Two thirds of the lifetime later a renews; b picks it up at its
	// next check instead of issuing its own.
	mu.Lock()
	now = now.Add(2*time.Hour + time.Minute)
	mu.Unlock()
	if renewed, err := a.Check(); err != nil || !renewed {
		t.Fatalf("a.Check = %v, %v; want a renewal", renewed, err)
	}
	if renewed, err := b.Check(); err != nil || !renewed {
		t.Fatalf("b.Check = %v, %v; want the new certificate taken", renewed, err)
	}
	if got := b.Certificate().Certificate[0]; !bytes.Equal(got, a.Certificate().Certificate[0]) || bytes.Equal(got, first) {
		t.Error("b does not serve a's renewed certificate")
	}

	// A replica with another host name widens the shared certificate
	// once; then neither renews for the other's names.
	c, err := pki.Open(pki.Config{Files: sb.PKIFiles(), Hosts: []string{"replica-c.example"}, ServerCertTTL: 3 * time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if names := c.Certificate().Leaf.DNSNames; !slices.Contains(names, "localhost") || !slices.Contains(names, "replica-c.example") {
		t.Fatalf("shared certificate names %v, want both replicas'", names)
	}
	for _, r := range []*pki.Authority{a, b, c, a} {
		r.Check()
	}
	if renewed, err := a.Check(); err != nil || renewed {
		t.Errorf("a.Check after everyone adopted = %v, %v; want nothing to do", renewed, err)
	}
	if !bytes.Equal(a.Certificate().Certificate[0], c.Certificate().Certificate[0]) {
		t.Error("replicas serve different certificates")
	}
}

func TestSharedToken(t *testing.T) {
	url := migrated(t)
	sa, sb := open(t, url), open(t, url)
	ctx := context.Background()
	ta, createdA, err := sa.SharedToken(ctx, "admin")
	if err != nil || !createdA || len(ta) < 32 {
		t.Fatalf("first SharedToken = %q created=%v err=%v", ta, createdA, err)
	}
	tb, createdB, err := sb.SharedToken(ctx, "admin")
	if err != nil || createdB || tb != ta {
		t.Fatalf("second replica's token = %q created=%v err=%v, want %q not created", tb, createdB, err, ta)
	}
	if other, _, _ := sa.SharedToken(ctx, "enroll"); other == ta {
		t.Error("two names share one token")
	}
}
