package service

import (
	"context"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// DefaultSeenFlush is how often RunSeen writes the sightings batched in
// memory.
const DefaultSeenFlush = 5 * time.Second

// Seen notes that device id made an authenticated request now. It costs no
// write: sightings are kept in memory and flushed by RunSeen.
func (s *Service) Seen(id string) {
	now := s.cfg.Now().UTC()
	s.seenMu.Lock()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	s.seen[id] = now
	s.seenMu.Unlock()
}

// LastSeen is when d was last seen: the pending sighting, else the stored
// one (zero when never).
func (s *Service) LastSeen(d store.Device) time.Time {
	s.seenMu.Lock()
	t, ok := s.seen[d.ID]
	s.seenMu.Unlock()
	if ok && t.After(d.LastSeenAt) {
		return t
	}
	return d.LastSeenAt
}

// Overdue reports whether d was not seen within two of its sync intervals
// (counting from enrollment or its last report when never seen).
func (s *Service) Overdue(d store.Device, lastSeen time.Time) bool {
	interval := time.Duration(d.SyncIntervalSeconds) * time.Second
	if interval <= 0 {
		interval = proto.DefaultSyncInterval
	}
	last := lastSeen
	if d.EnrolledAt.After(last) {
		last = d.EnrolledAt
	}
	if d.Report != nil && d.Report.ReceivedAt.After(last) {
		last = d.Report.ReceivedAt
	}
	return s.cfg.Now().Sub(last) > 2*interval
}

// FlushSeen writes the pending sightings in one store transaction. On
// failure they are kept for the next flush.
func (s *Service) FlushSeen(ctx context.Context) error {
	s.seenMu.Lock()
	batch := s.seen
	s.seen = nil
	s.seenMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := s.st.MarkSeen(ctx, batch); err != nil {
		s.seenMu.Lock()
		for id, t := range batch {
			if cur, ok := s.seen[id]; !ok || t.After(cur) {
				if s.seen == nil {
					s.seen = map[string]time.Time{}
				}
				s.seen[id] = t
			}
		}
		s.seenMu.Unlock()
		return err
	}
	return nil
}

// RunSeen flushes sightings every interval (0: DefaultSeenFlush) until ctx
// is done, then once more.
func (s *Service) RunSeen(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultSeenFlush
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.FlushSeen(context.WithoutCancel(ctx)); err != nil {
				s.logger.Error("flushing last-seen times", "err", err)
			}
			return
		case <-t.C:
			if err := s.FlushSeen(ctx); err != nil {
				s.logger.Error("flushing last-seen times", "err", err)
			}
		}
	}
}

// checkSyncInterval bounds a sync interval a device tells.
func checkSyncInterval(secs int64) error {
	if secs < 0 || time.Duration(secs)*time.Second > proto.MaxSyncInterval {
		return Errorf("invalid_body", "syncIntervalSeconds must be from 0 to %d", int64(proto.MaxSyncInterval/time.Second))
	}
	return nil
}
