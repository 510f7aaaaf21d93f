package service

import (
	"context"
	"errors"

	"github.com/doorbell-mdm/doorbell/server/store"
)

// ErrRevisionNotFound is a revision number a layer never had (or no longer
// keeps).
var ErrRevisionNotFound = Errorf("revision_not_found", "no such revision")

// Revisions lists the kept revisions of a group's policy or a device's own
// layer, newest first. A layer that never existed is group_not_found or
// device_not_found; a deleted group keeps its revisions.
func (s *Service) Revisions(ctx context.Context, kind store.RevisionKind, id string) ([]store.Revision, error) {
	revs, err := s.st.Revisions(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		if err := s.layerExists(ctx, kind, id); err != nil {
			return nil, err
		}
	}
	return revs, nil
}

// Revision returns revision n of a layer.
func (s *Service) Revision(ctx context.Context, kind store.RevisionKind, id string, n int64) (store.Revision, error) {
	r, err := s.st.Revision(ctx, kind, id, n)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.layerExists(ctx, kind, id); err != nil {
			return r, err
		}
		return r, ErrRevisionNotFound
	}
	return r, err
}

func (s *Service) layerExists(ctx context.Context, kind store.RevisionKind, id string) error {
	var err error
	if kind == store.RevisionGroup {
		_, err = s.st.Group(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrGroupNotFound
		}
	} else {
		_, err = s.st.Device(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrDeviceNotFound
		}
	}
	return err
}

// RollbackGroup makes revision n of a group's policy (settings, per-setting
// modes, mode) current again. It is an edit like any other: a new revision
// (numbers only grow), members whose effective policy changes get a new
// version and are rung.
func (s *Service) RollbackGroup(ctx context.Context, id string, n int64) (store.Group, int, error) {
	r, err := s.Revision(ctx, store.RevisionGroup, id, n)
	if err != nil {
		return store.Group{}, 0, err
	}
	return s.UpdateGroup(ctx, id, func(g store.Group) (store.Group, error) {
		g.Layer, g.Mode = r.Layer, r.Mode
		return g, nil
	})
}

// RollbackDevice makes revision n of a device's own layer current again,
// as a new revision.
func (s *Service) RollbackDevice(ctx context.Context, id string, n int64) (store.Device, error) {
	r, err := s.Revision(ctx, store.RevisionDevice, id, n)
	if err != nil {
		return store.Device{}, err
	}
	return s.EditOverride(ctx, id, func(store.Layer) store.Layer { return r.Layer })
}
