package api

import (
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// rateStore is the rate limiters' storage: in memory, expired entries
// swept as new ones are written. It has no goroutine of its own; fiber's
// default storage starts one per limiter that never stops.
type rateStore struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]rateEntry
	writes  int
}

type rateEntry struct {
	val []byte
	exp time.Time // zero: never expires
}

var _ fiber.Storage = (*rateStore)(nil)

func newRateStore(now func() time.Time) *rateStore {
	return &rateStore{now: now, entries: map[string]rateEntry{}}
}

// Get implements fiber.Storage: nil for a missing or expired key.
func (s *rateStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || !e.exp.IsZero() && !s.now().Before(e.exp) {
		return nil, nil
	}
	return e.val, nil
}

// Set implements fiber.Storage. Every 1024 writes it drops expired keys, so
// the map holds only the keys active within one window.
func (s *rateStore) Set(key string, val []byte, exp time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e := rateEntry{val: append([]byte(nil), val...)}
	if exp > 0 {
		e.exp = now.Add(exp)
	}
	s.entries[key] = e
	if s.writes++; s.writes%1024 == 0 {
		for k, e := range s.entries {
			if !e.exp.IsZero() && !now.Before(e.exp) {
				delete(s.entries, k)
			}
		}
	}
	return nil
}

// Delete implements fiber.Storage.
func (s *rateStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
	return nil
}

// Reset implements fiber.Storage.
func (s *rateStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = map[string]rateEntry{}
	return nil
}

// Close implements fiber.Storage.
func (s *rateStore) Close() error { return nil }
