package broker_test

import (
	"crypto/sha256"
	"testing"
)

// TestDisconnectOperator: every live session of a revoked operator token is
// closed at once; sessions of other tokens and devices stay (issue 17,
// finding 2).
func TestDisconnectOperator(t *testing.T) {
	tb := startBroker(t, nil)
	a := mustConnect(t, tb, "op-a", "operator", operatorToken)
	b := mustConnect(t, tb, "op-b", "operator", operatorToken)
	dev := connectDevice(t, tb, "dev-a")
	h := sha256.Sum256([]byte("some-other-token"))
	if n := tb.DisconnectOperator(h[:]); n != 0 {
		t.Errorf("another token's hash closed %d sessions", n)
	}
	h = sha256.Sum256([]byte(operatorToken))
	if n := tb.DisconnectOperator(h[:]); n != 2 {
		t.Errorf("closed %d sessions, want 2", n)
	}
	a.awaitLost(t)
	b.awaitLost(t)
	if !dev.IsConnected() {
		t.Error("the device was disconnected too")
	}
}
