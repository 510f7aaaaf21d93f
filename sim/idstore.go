package sim

import (
	"sync"

	"github.com/doorbell-mdm/doorbell/agent"
)

// memIDStore keeps one simulated device's identity in memory, so the fleet
// costs no files; it survives as long as the simulator runs, which is what a
// self-contained run needs.
type memIDStore struct {
	mu sync.Mutex
	id agent.Identity
	ok bool
}

var _ agent.IDStore = (*memIDStore)(nil)

func (s *memIDStore) Load() (agent.Identity, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.ok, nil
}

func (s *memIDStore) Save(id agent.Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.ok = id, true
	return nil
}

func (s *memIDStore) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.ok = agent.Identity{}, false
	return nil
}
