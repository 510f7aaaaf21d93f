package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

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
}

// RefreshInventory asks for a full inventory upload at the next sync, and
// triggers one. The "refresh_inventory" doorbell calls it.
func (a *Agent) RefreshInventory() {
	a.mu.Lock()
	a.inv.force = true
	a.mu.Unlock()
	a.Trigger()
}

// syncInventory collects the inventory and uploads what the server lacks:
// everything after an enrollment, on RefreshInventory and once every
// proto.InventoryFullResendAge; otherwise only the sections whose hash
// changed since the server confirmed them, and nothing at all when none
// did. After a restart it first sends the hashes alone and uploads the
// sections the server answers it lacks. It records what it sent in res.
func (a *Agent) syncInventory(ctx context.Context, res *SyncResult) {
	if a.cfg.Inventory == nil {
		return
	}
	id, ok := a.currentIdentity()
	if !ok {
		return
	}
	inv, cerr := a.cfg.Inventory.Collect(ctx)
	if cerr != nil {
		a.log.Warn("collecting inventory", "err", cerr)
		res.InventoryErr = cerr
	}
	if len(inv.Present()) == 0 {
		return
	}
	hashes := inv.Hashes()
	now := a.clock.Now()
	a.mu.Lock()
	st := a.inv
	a.mu.Unlock()

	var send []string
	switch {
	case st.fresh || st.force || (st.acked != nil && now.Sub(st.lastFull) >= proto.InventoryFullResendAge):
		send = inv.Present()
		st.lastFull = now
	case st.acked == nil:
		// Restarted: ask which sections the server lacks.
		ack, err := a.client.PutInventory(ctx, id.Credentials(), proto.InventoryUpload{CollectedAt: now.UTC(), Hashes: hashes})
		if err != nil {
			res.InventoryErr = err
			return
		}
		res.InventoryProbed = true
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
			res.InventoryErr = fmt.Errorf("uploading inventory: the server still lacks %v", send)
			return
		}
		up := proto.InventoryUpload{CollectedAt: now.UTC(), Hashes: hashes, Inventory: inv.Only(send)}
		ack, err := a.client.PutInventory(ctx, id.Credentials(), up)
		if err != nil {
			res.InventoryErr = err
			a.log.Warn("uploading inventory", "deviceId", id.DeviceID, "sections", send, "err", err)
			return
		}
		res.InventorySent = append(res.InventorySent, send...)
		// A section the server lacks besides these (it lost one it had
		// confirmed) goes in one more upload.
		send = ack.Missing
	}
	a.mu.Lock()
	if a.haveID && a.id.DeviceID == id.DeviceID {
		a.inv = invState{acked: hashes, lastFull: st.lastFull}
	}
	a.mu.Unlock()
	if len(res.InventorySent) > 0 {
		a.log.Info("inventory uploaded", "deviceId", id.DeviceID, "sections", res.InventorySent)
	}
}
