package daemon

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/server/store/postgres/pgtest"
)

// TestReplicaHealthWithoutDatabase: a replica whose database stops
// answering says so on /healthz (503, so a balancer takes it out), and is
// healthy again once the database is back; it stops cleanly either way.
func TestReplicaHealthWithoutDatabase(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	url, err := pg.CreateDatabase(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, url)
	healthz := func() (int, string) {
		var body struct{ Status, Error string }
		st, _, b := send(t, "GET", "http://"+r.d.HTTPAddr()+"/healthz", "", "", nil)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("/healthz answered %d %q: %v", st, b, err)
		}
		return st, body.Error
	}
	testkit.Eventually(t, 30*time.Second, "the replica to be healthy", func() bool { st, _ := healthz(); return st == 200 })

	pg.Halt()
	testkit.Eventually(t, 30*time.Second, "/healthz to answer 503 with the database down", func() bool { st, _ := healthz(); return st == 503 })
	if _, msg := healthz(); msg != "the database does not answer" {
		t.Errorf("503 error %q, want the database's", msg)
	}

	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "/healthz to answer 200 again", func() bool { st, _ := healthz(); return st == 200 })
	if st, _, body := send(t, "GET", "http://"+r.d.HTTPAddr()+"/devices", r.d.AdminToken(), "", nil); st != 200 {
		t.Errorf("GET /devices after the database came back: %d %s", st, body)
	}
}
