package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// BuiltinAdminName is the name of the operator of the built-in admin
// token (--admin-token).
const BuiltinAdminName = "admin"

// Operator is an authenticated operator: its token's name and role.
type Operator struct {
	Name, Role string
}

// Credentials checks operator tokens and device secrets. The API and the
// broker share it; it implements broker.Credentials.
type Credentials struct {
	Devices store.DeviceStore
	// Operators holds the named operator tokens; nil admits only
	// AdminToken.
	Operators  store.OperatorTokenStore
	AdminToken string
}

// HashSecret is how a device secret or a token is kept: its SHA-256.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// EqualToken compares two tokens in constant time.
func EqualToken(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Operator returns the operator token names: the built-in admin token or a
// named token of either role.
func (cr Credentials) Operator(ctx context.Context, token string) (Operator, bool) {
	if token == "" {
		return Operator{}, false
	}
	if EqualToken(token, cr.AdminToken) {
		return Operator{Name: BuiltinAdminName, Role: proto.RoleAdmin}, true
	}
	if cr.Operators == nil {
		return Operator{}, false
	}
	t, err := cr.Operators.OperatorTokenByHash(ctx, HashSecret(token))
	if err != nil {
		return Operator{}, false
	}
	return Operator{Name: t.Name, Role: t.Role}, true
}

// IsOperator reports whether token is an operator token.
func (cr Credentials) IsOperator(token string) bool {
	_, ok := cr.Operator(context.Background(), token)
	return ok
}

// AuthenticateDevice reports whether secret is deviceID's current secret.
func (cr Credentials) AuthenticateDevice(deviceID, secret string) bool {
	if deviceID == "" || secret == "" {
		return false
	}
	d, err := cr.Devices.DeviceAuth(context.Background(), deviceID)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(HashSecret(secret), d.SecretHash) == 1
}

// AuthenticateOperator reports whether token is an operator token.
func (cr Credentials) AuthenticateOperator(token string) bool { return cr.IsOperator(token) }
