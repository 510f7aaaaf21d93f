package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/doorbell-mdm/doorbell/server/pki"
)

// pkiLock is the advisory lock under which a replica creates the CA or
// renews the server certificate.
const pkiLock = 0x706b69 // "pki"

// PKIFiles keeps the private CA and the generated server certificate in
// the database, so every replica serves the same identity.
type PKIFiles struct{ s *Store }

var (
	_ pki.Files  = PKIFiles{}
	_ pki.Locker = PKIFiles{}
)

// PKIFiles returns the store's pki.Files.
func (s *Store) PKIFiles() PKIFiles { return PKIFiles{s} }

// Read implements pki.Files.
func (f PKIFiles) Read(name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, _, err := f.s.SharedValue(ctx, "pki/"+name)
	if errors.Is(err, ErrNoSharedValue) {
		return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	return v, err
}

// Write implements pki.Files.
func (f PKIFiles) Write(name string, data []byte, _ os.FileMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f.s.SetSharedValue(ctx, "pki/"+name, data)
}

// WithLock implements pki.Locker with a session advisory lock.
func (f PKIFiles) WithLock(fn func() error) error {
	ctx := context.Background()
	conn, err := f.s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(pkiLock)); err != nil {
		return err
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", int64(pkiLock))
	return fn()
}

// SharedToken returns the token every replica uses under name: the first
// replica to ask generates it (created true, so it prints it once).
func (s *Store) SharedToken(ctx context.Context, name string) (token string, created bool, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	v, created, err := s.InitSharedValue(ctx, TokenKey(name), []byte(base64.RawURLEncoding.EncodeToString(b)))
	return string(v), created, err
}

// TokenKey is the shared_state name of the generated token name.
func TokenKey(name string) string { return "token/" + name }
