package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/cluster"
	"github.com/doorbell-mdm/doorbell/server/service"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
)

// IsPostgres reports whether a --store value names a PostgreSQL database.
func IsPostgres(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// openShared opens the PostgreSQL store named by cfg.Store.
func (d *Daemon) openShared(ctx context.Context, onCommand func(...store.CommandChange)) error {
	pg, err := postgres.Open(ctx, d.cfg.Store, postgres.WithCommandHook(onCommand))
	if err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	d.pg = pg
	d.store = pg
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	d.replica = host + "-" + hex.EncodeToString(b)
	return nil
}

// sharedToken is token() on PostgreSQL: the configured token, or the one
// the first replica generated (and printed) into the database.
func (d *Daemon) sharedToken(configured, name, what string) (tok string, created bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	tok, created, err = d.pg.SharedToken(context.Background(), name)
	if err != nil {
		return "", false, fmt.Errorf("reading the shared %s: %w", what, err)
	}
	if created {
		fmt.Fprintf(d.cfg.Out, "Generated %s (kept in the database; shown only now): %s\n", what, tok)
	}
	return tok, created, nil
}

// startCluster makes this daemon one replica of several: rings, live
// stream events and revocations cross replicas over the bus, presence is
// shared. It returns the bell that forwards rings to the other replicas.
func (d *Daemon) startCluster(local *bridge.MQTTBell) bridge.Bell {
	d.bus = d.pg.NewBus(d.replica, d.cfg.Logger)
	d.node = cluster.NewNode(cluster.Config{
		ID:           d.replica,
		Bus:          d.bus,
		Presence:     d.pg,
		Local:        d.broker,
		Ring:         local.Ring,
		ChangedSince: d.pg.PolicyChangedSince,
		Missing:      d.pg.MissingDevices,
		OnEvent: func(id string, cause proto.EventCause) {
			d.api.RemoteChanged(id, cause)
		},
		OnRevokeOperator: func(name string, hash []byte) {
			d.api.Service().RevokePrincipal(service.Principal{Kind: service.PrincipalOperator, Name: name, TokenHash: hash, Remote: true})
		},
		Logger: d.cfg.Logger,
	})
	return d.node.Bell()
}

// forwardChanges sends the changes this replica commits to the others'
// live streams while any of them has one open, and the revocations made
// here to the others' sessions.
func (d *Daemon) forwardChanges() {
	d.api.Service().Subscribe(func(ch service.Change) { d.node.DeviceChanged(ch.Device.ID, ch.Cause) })
	d.api.OnStreams(d.node.StreamsChanged)
	d.api.Service().OnRevoke(func(p service.Principal) {
		if p.Kind == service.PrincipalOperator && !p.Remote {
			d.node.RevokeOperator(p.Name, p.TokenHash)
		}
	})
}

// Replica is this daemon's name among replicas ("" on bbolt).
func (d *Daemon) Replica() string { return d.replica }
