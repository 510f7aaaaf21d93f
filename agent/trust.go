package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/doorbell-mdm/doorbell/proto"
)

// isMQTTLoginRefused reports whether a connect failed because the broker
// refused the device's credentials.
func isMQTTLoginRefused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)
}

// Codes of the server's replay refusals (409), after which the agent
// re-reads its policy and reports again with a fresh nonce and time.
const (
	CodeReplayedNonce = "replayed_nonce"
	CodeStaleReport   = "stale_report"
)

// IsReplayRefusal reports whether err is the server refusing a report as a
// replay (a nonce it already accepted) or as older than its last accepted
// report.
func IsReplayRefusal(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == 409 && (e.Code == CodeReplayedNonce || e.Code == CodeStaleReport)
}

// syncDevice runs the device part of a sync for id. A 404 in res.Err makes
// the caller enroll again. A report refused as a replay is retried once
// after re-reading the policy, with a fresh nonce and time: the agent's own
// report never is a replay, so the refusal means a retried request got
// through twice or the clock moved, and a fresh report resolves it.
func (a *Agent) syncDevice(ctx context.Context, id Identity) SyncResult {
	res := a.syncDeviceOnce(ctx, id)
	if !IsReplayRefusal(res.Err) {
		return res
	}
	a.log.Warn("server refused the report as a replay; re-reading the policy and reporting again",
		"deviceId", id.DeviceID, "err", res.Err)
	a.mu.Lock()
	a.etag = ""
	a.mu.Unlock()
	return a.syncDeviceOnce(ctx, id)
}

// stamp adds the replay-resistance fields and the binary's hash to r.
func (a *Agent) stamp(r *proto.ComplianceReport) {
	r.ReportedAt = a.clock.Now().UTC()
	r.Nonce = newNonce()
	r.AgentSHA256 = a.binaryHash()
}

func newNonce() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return hex.EncodeToString(b)
}

// binaryHash returns Config.AgentSHA256, or the SHA-256 of the running
// executable, computed once; "" when it cannot be read.
func (a *Agent) binaryHash() string {
	a.hashOnce.Do(func() {
		if a.cfg.AgentSHA256 != "" {
			a.hash = a.cfg.AgentSHA256
			return
		}
		h, err := executableSHA256()
		if err != nil {
			a.log.Warn("cannot hash the agent binary; reports go without agentSha256", "err", err)
			return
		}
		a.hash = h
	})
	return a.hash
}

// executableSHA256 hashes the running executable once per process: many
// agents in one process (the fleet simulator runs 10,000) share it.
var executableSHA256 = sync.OnceValues(ExecutableSHA256)

// ExecutableSHA256 returns the hex SHA-256 of the running executable, the
// value an agent reports as agentSha256 and an operator puts on the
// server's allowlist.
func ExecutableSHA256() (string, error) {
	path, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the executable: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading the executable: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
