package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
	"github.com/doorbell-mdm/doorbell/proto"
)

// PutInventory uploads inventory sections (PUT /devices/{id}/inventory),
// gzip-compressed, and returns which sections the server still lacks.
func (c *Client) PutInventory(ctx context.Context, cred Credentials, up proto.InventoryUpload) (proto.InventoryAck, error) {
	raw, err := json.Marshal(up)
	if err != nil {
		return proto.InventoryAck{}, fmt.Errorf("encoding inventory: %w", err)
	}
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	if _, err := zw.Write(raw); err != nil {
		return proto.InventoryAck{}, err
	}
	if err := zw.Close(); err != nil {
		return proto.InventoryAck{}, err
	}
	hdr := http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}
	var ack proto.InventoryAck
	if _, err := c.doBody(ctx, http.MethodPut, devicePath(cred.DeviceID, "inventory"), cred.Secret, hdr, &body, &ack, http.StatusOK); err != nil {
		return proto.InventoryAck{}, fmt.Errorf("uploading inventory: %w", err)
	}
	return ack, nil
}

// Inventory scheduling.
const (
	// DefaultInventoryInterval is how often the agent collects its
	// inventory to look for changed sections when
	// Config.InventoryInterval is 0. Jittered ±10% like syncs.
	DefaultInventoryInterval = time.Hour
)

// InventoryResult describes one inventory pass.
type InventoryResult struct {
	DeviceID string
	// Full is true when every section was due (enrollment, a request, the
	// daily upload).
	Full bool
	// Sent names the sections uploaded, none when nothing changed.
	Sent []string
	// Probed is true when the agent asked the server which sections it
	// lacks (after a restart).
	Probed bool
	// Err is why collecting or uploading failed. A section the collector
	// could not read is named here while the rest are still sent.
	Err error
}

// invState is what the agent knows of the server's copy of its inventory.
// It lives in memory: after a restart the agent asks the server (a probe,
// hashes only) instead of uploading everything again.
type invState struct {
	// acked holds the section hashes the server confirmed; nil when
	// unknown (the agent just started or enrolled).
	acked map[string]string
	// fresh is set by an enrollment: the next upload is a full one.
	fresh bool
	// force is set by RefreshInventory: the next upload is a full one.
	force bool
	// lastFull is when the last full upload (or the startup probe) was
	// made; a full upload follows proto.InventoryFullResendAge later.
	lastFull time.Time
	// retry is set when a pass failed for a reason that may pass (no
	// answer, 5xx, 429): the next successful sync starts another pass
	// rather than waiting for the inventory timer.
	retry bool
	// refused is set when the server refused the last pass (a 4xx: a
	// server without inventory, an upload over its limits): only a
	// request or the inventory timer starts the next one, not every sync.
	refused bool
	// running is set while a pass runs; a sync then asks for none.
	running bool
}

// due reports whether a pass should run now, before the inventory timer:
// after an enrollment or a restart, on request, after a transient
// failure, or when the daily full upload is due.
func (st invState) due(now time.Time) bool {
	switch {
	case st.running:
		return false
	case st.force || st.retry:
		return true
	case st.refused:
		return false
	}
	return st.fresh || st.acked == nil || now.Sub(st.lastFull) >= proto.InventoryFullResendAge
}

// RefreshInventory asks for a full inventory upload and starts it in the
// background (the inventory loop of Run). The "refresh_inventory" doorbell
// and the server's Doorbell-Inventory header call it.
func (a *Agent) RefreshInventory() {
	a.mu.Lock()
	a.inv.force = true
	a.mu.Unlock()
	a.kickInventory()
}

// kickInventory asks the inventory loop for a pass soon; requests
// coalesce.
func (a *Agent) kickInventory() {
	select {
	case a.invKick <- struct{}{}:
	default:
	}
}

// inventoryAfterSync starts a pass after a successful sync when one is due
// (see invState.due); otherwise collection waits for the inventory timer,
// so a sync never waits for the inventory. Under Run the pass is handed to
// the inventory loop. Without Run (a phone woken by a push or a WorkManager
// job calls Sync alone, and there is no loop) the due pass runs here, at
// the end of the sync, as the only chance it gets.
func (a *Agent) inventoryAfterSync(ctx context.Context) {
	if a.cfg.Inventory == nil {
		return
	}
	a.mu.Lock()
	due := a.haveID && a.inv.due(a.clock.Now())
	a.mu.Unlock()
	if !due {
		return
	}
	if a.running.Load() {
		a.kickInventory()
		return
	}
	a.InventoryPass(ctx)
}

// inventoryLoop runs inventory passes off the sync path until ctx is done:
// when kicked (enrollment, restart, request, daily upload due: see
// inventoryAfterSync and RefreshInventory) and every InventoryInterval to
// look for changed sections. An unchanged inventory costs a collection on
// the device and nothing on the network.
func (a *Agent) inventoryLoop(ctx context.Context) {
	every := backoff.Backoff{Jitter: syncJitter, Rand: a.rnd} // the interval ±10%
	timer := a.clock.NewTimer(every.Spread(a.cfg.InventoryInterval))
	defer func() { timer.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.invKick:
		case <-timer.C():
		}
		timer.Stop()
		a.InventoryPass(ctx)
		if ctx.Err() != nil {
			return
		}
		timer = a.clock.NewTimer(every.Spread(a.cfg.InventoryInterval))
	}
}

// InventoryPass runs one inventory pass now (the inventory loop of Run
// runs them on its own schedule): it collects the inventory and uploads
// what the server lacks: everything after an enrollment, on
// RefreshInventory and once every proto.InventoryFullResendAge; otherwise
// only the sections whose hash changed since the server confirmed them,
// and nothing at all when none did. After a restart it first sends the
// hashes alone and uploads the sections the server answers it lacks.
// Passes never overlap; a pass does nothing before enrollment or without
// a Collector. The result also goes to Config.OnInventory.
func (a *Agent) InventoryPass(ctx context.Context) InventoryResult {
	return a.inventoryPass(ctx, false)
}

// inventoryPass is InventoryPass; full forces a full upload.
func (a *Agent) inventoryPass(ctx context.Context, full bool) InventoryResult {
	select {
	case a.invSem <- struct{}{}:
	case <-ctx.Done():
		return InventoryResult{Err: ctx.Err()}
	}
	defer func() { <-a.invSem }()
	defer a.holdConnections()()
	var res InventoryResult
	if a.cfg.Inventory == nil {
		return res
	}
	id, ok := a.currentIdentity()
	if !ok {
		return res
	}
	res.DeviceID = id.DeviceID
	a.mu.Lock()
	a.inv.running = true
	a.mu.Unlock()
	a.syncInventory(ctx, id, full, &res)
	a.mu.Lock()
	a.inv.running = false
	a.mu.Unlock()
	if a.cfg.OnInventory != nil {
		a.cfg.OnInventory(res)
	}
	return res
}

// refreshInventoryCommand carries out a refresh_inventory command: a full
// collection and upload now, then ACKNOWLEDGED. A section the collector
// could not read is named in the message; the rest were sent.
func (a *Agent) refreshInventoryCommand(ctx context.Context) proto.CommandResult {
	if a.cfg.Inventory == nil {
		return Unsupported(proto.CommandRefreshInventory)
	}
	res := a.inventoryPass(ctx, true)
	if len(res.Sent) == 0 && res.Err != nil {
		return failed(res.Err.Error())
	}
	r := Acknowledged(fmt.Sprintf("uploaded %d sections: %s", len(res.Sent), strings.Join(res.Sent, ", ")))
	if res.Err != nil {
		r.Message = res.Err.Error()
	}
	return r
}

// syncInventory is one pass for identity id. The caller holds invSem.
func (a *Agent) syncInventory(ctx context.Context, id Identity, full bool, res *InventoryResult) {
	inv, cerr := a.cfg.Inventory.Collect(ctx)
	if cerr != nil {
		a.log.Warn("collecting inventory", "err", cerr)
		res.Err = cerr
	}
	if len(inv.Present()) == 0 {
		return
	}
	hashes := inv.Hashes()
	now := a.clock.Now()
	a.mu.Lock()
	st := a.inv
	// A request that arrives from here on asks for the next pass.
	a.inv.force, a.inv.fresh = false, false
	a.mu.Unlock()
	owed := func(err error) {
		// The upload failed: what was asked is still owed, and a
		// failure that may pass is retried after the next good sync.
		res.Err = err
		s := StatusOf(err)
		a.mu.Lock()
		if a.haveID && a.id.DeviceID == id.DeviceID {
			a.inv.force = a.inv.force || st.force || full
			a.inv.fresh = a.inv.fresh || st.fresh
			a.inv.retry = ctx.Err() == nil && (s == 0 || s >= 500 || s == http.StatusTooManyRequests)
			a.inv.refused = s >= 400 && s < 500 && s != http.StatusTooManyRequests
		}
		a.mu.Unlock()
	}

	var send []string
	switch {
	case full || st.fresh || st.force || (st.acked != nil && now.Sub(st.lastFull) >= proto.InventoryFullResendAge):
		send = inv.Present()
		st.lastFull = now
		res.Full = true
	case st.acked == nil:
		// Restarted: ask which sections the server lacks.
		ack, err := a.client.PutInventory(ctx, id.Credentials(), proto.InventoryUpload{CollectedAt: now.UTC(), Hashes: hashes})
		if err != nil {
			owed(err)
			return
		}
		res.Probed = true
		send = ack.Missing
		st.lastFull = now
	default:
		for _, s := range inv.Present() {
			if st.acked[s] != hashes[s] {
				send = append(send, s)
			}
		}
	}
	for attempt := 0; len(send) > 0; attempt++ {
		if attempt == 2 {
			owed(fmt.Errorf("uploading inventory: the server still lacks %v", send))
			return
		}
		up := proto.InventoryUpload{CollectedAt: now.UTC(), Hashes: hashes, Inventory: inv.Only(send)}
		ack, err := a.client.PutInventory(ctx, id.Credentials(), up)
		if err != nil {
			owed(err)
			a.log.Warn("uploading inventory", "deviceId", id.DeviceID, "sections", send, "err", err)
			return
		}
		res.Sent = append(res.Sent, send...)
		// A section the server lacks besides these (it lost one it had
		// confirmed) goes in one more upload.
		send = ack.Missing
	}
	a.mu.Lock()
	if a.haveID && a.id.DeviceID == id.DeviceID {
		a.inv = invState{acked: hashes, lastFull: st.lastFull, force: a.inv.force, fresh: a.inv.fresh, running: a.inv.running}
	}
	a.mu.Unlock()
	if len(res.Sent) > 0 {
		a.log.Info("inventory uploaded", "deviceId", id.DeviceID, "sections", res.Sent)
	} else {
		a.log.Info("inventory unchanged", "deviceId", id.DeviceID)
	}
}
