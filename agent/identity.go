package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Identity is what an enrolled agent must remember across restarts. It holds
// the device secret: store it where only the agent can read it.
type Identity struct {
	DeviceID     string `json:"deviceId"`
	DeviceSecret string `json:"deviceSecret"`
	// MQTTURL and Topic are where the server said the doorbell rings.
	MQTTURL string `json:"mqttUrl,omitempty"`
	Topic   string `json:"topic,omitempty"`
	// FCMToken is the push token last registered with the server, so an
	// unchanged token is not registered again.
	FCMToken string `json:"fcmToken,omitempty"`
	// KeyPEM is the device's private key, made on the device and never
	// sent; CertPEM its certificate from the server's CA; CAPEM the server
	// CA pinned at enrollment for every later connection.
	KeyPEM  string `json:"keyPem,omitempty"`
	CertPEM string `json:"certPem,omitempty"`
	CAPEM   string `json:"caPem,omitempty"`
}

// Credentials returns the credentials device calls are made with.
func (id Identity) Credentials() Credentials {
	return Credentials{DeviceID: id.DeviceID, Secret: id.DeviceSecret}
}

// LogValue keeps the secret and the push token out of logs.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("deviceId", id.DeviceID),
		slog.String("mqttUrl", id.MQTTURL),
		slog.Bool("fcmRegistered", id.FCMToken != ""),
		slog.Bool("certificate", id.CertPEM != ""),
		slog.Bool("caPinned", id.CAPEM != ""),
	)
}

// IDStore persists the agent's Identity.
type IDStore interface {
	// Load returns the stored identity. When none is stored it returns
	// (Identity{}, false, nil); an error means the store could not be read
	// or holds something unreadable.
	Load() (Identity, bool, error)
	// Save replaces the stored identity. When Save returns nil the identity
	// survives a crash or power loss.
	Save(Identity) error
	// Clear forgets the stored identity. Clearing an empty store is not an
	// error.
	Clear() error
}

// WritableChecker is implemented by identity stores that can tell, before
// an enrollment, whether a new identity could be saved. The agent does not
// enroll while the answer is an error: the enrollment would spend a use
// of the token on an identity the device cannot keep.
type WritableChecker interface {
	CheckWritable() error
}

var _ WritableChecker = (*FileIDStore)(nil)

// identityFile is the name of the file FileIDStore keeps in its directory.
const identityFile = "identity.json"

// FileIDStore keeps the identity in <dir>/identity.json, readable only by the
// agent's user (mode 0600, directory 0700). Writes are atomic: a crash leaves
// either the old or the new identity, never a torn file.
type FileIDStore struct {
	dir string
	mu  sync.Mutex
}

var _ IDStore = (*FileIDStore)(nil)

// NewFileIDStore returns a store in dir; dir is created on the first Save.
func NewFileIDStore(dir string) *FileIDStore {
	return &FileIDStore{dir: dir}
}

// Path is the identity file's path.
func (s *FileIDStore) Path() string { return filepath.Join(s.dir, identityFile) }

// Load implements IDStore. A missing file (or directory) is not found.
func (s *FileIDStore) Load() (Identity, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("reading identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, false, fmt.Errorf("reading identity %s: %w", s.Path(), err)
	}
	if id.DeviceID == "" || id.DeviceSecret == "" {
		return Identity{}, false, fmt.Errorf("reading identity %s: no device id or secret", s.Path())
	}
	return id, true, nil
}

// Save implements IDStore.
func (s *FileIDStore) Save(id Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := writeFileAtomic(s.Path(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}

// CheckWritable implements WritableChecker: it creates the directory and
// writes, syncs and removes a probe file in it.
func (s *FileIDStore) CheckWritable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s is not writable: %w", s.dir, err)
	}
	f, err := os.CreateTemp(s.dir, ".probe.*.tmp")
	if err != nil {
		return fmt.Errorf("state dir %s is not writable: %w", s.dir, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte{'\n'})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state dir %s is not writable: %w", s.dir, err)
	}
	return nil
}

// Clear implements IDStore.
func (s *FileIDStore) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clearing identity: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: it writes a temporary file in the
// same directory, fsyncs it, renames it over path and fsyncs the directory,
// so readers see the old or the new content and never a partial one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Not every platform can fsync a
	// directory; the file content is already safe, so this is best effort.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
