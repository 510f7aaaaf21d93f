package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/inventory"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// SaveInventory stores an upload from device d (already validated by
// inventory.DecodeUpload) and answers which sections of its hashes the
// server still lacks. A full upload (every hashed section sent) settles a
// pending RequestInventory.
func (s *Service) SaveInventory(ctx context.Context, d store.Device, up proto.InventoryUpload) (proto.InventoryAck, error) {
	missing, err := s.st.SaveInventory(ctx, d.ID, up, s.Now())
	if errors.Is(err, store.ErrNotFound) {
		return proto.InventoryAck{}, ErrDeviceNotFound
	}
	if err != nil {
		return proto.InventoryAck{}, fmt.Errorf("saving inventory: %w", err)
	}
	if len(up.Present()) == len(up.Hashes) {
		s.invRefresh.Delete(d.ID)
	}
	if missing == nil {
		missing = []string{}
	}
	return proto.InventoryAck{Missing: missing}, nil
}

// RequestInventory asks device id for its whole inventory: it queues a
// refresh_inventory command (which rings the device; agents of capability
// 7 carry it out and answer ACKNOWLEDGED) and, for older agents, marks the
// device so that until it uploads a whole inventory its policy answers
// carry proto.InventoryRequestHeader (an older agent answers the command
// ERROR unsupported and uploads through the header). The mark lives in
// memory: a server restart forgets it, and the agent's daily full upload
// covers that. ctx carries the audit entry.
func (s *Service) RequestInventory(ctx context.Context, id, actor string) (proto.Command, error) {
	cmd, err := s.SendCommand(ctx, id, proto.CommandRequest{Type: proto.CommandRefreshInventory}, actor)
	if err != nil {
		return cmd, err
	}
	s.invRefresh.Store(id, struct{}{})
	return cmd, nil
}

// InventoryRequested reports whether device id was asked for its whole
// inventory and has not sent it yet.
func (s *Service) InventoryRequested(id string) bool {
	_, ok := s.invRefresh.Load(id)
	return ok
}

// Inventory returns device id's inventory; sections, when not empty, keeps
// only those sections (the console's fleet search asks for the small ones).
func (s *Service) Inventory(ctx context.Context, id string, sections []string) (proto.DeviceInventory, error) {
	for _, sec := range sections {
		if !slices.Contains(proto.InventorySections, sec) {
			return proto.DeviceInventory{}, Errorf("invalid_query", "unknown section %q (want any of %s)", sec, strings.Join(proto.InventorySections, ", "))
		}
	}
	inv, err := s.st.Inventory(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return inv, ErrDeviceNotFound
	}
	if err != nil {
		return inv, fmt.Errorf("reading inventory: %w", err)
	}
	if len(sections) > 0 {
		inv.Inventory = inv.Inventory.Only(sections)
	}
	return inv, nil
}

// PackageVersions answers GET /inventory/packages: the installed versions
// of name by format, newest first (in each format's own order), with the
// sum of their device counts, read from the counts alone.
func (s *Service) PackageVersions(ctx context.Context, name string) (proto.PackageVersions, error) {
	if name == "" || len(name) > proto.MaxInventoryStringLen {
		return proto.PackageVersions{}, Errorf("invalid_query", "name is required (at most %d bytes)", proto.MaxInventoryStringLen)
	}
	vs, err := s.st.PackageVersions(ctx, name)
	if err != nil {
		return proto.PackageVersions{}, fmt.Errorf("reading package versions: %w", err)
	}
	slices.SortStableFunc(vs, func(a, b proto.PackageVersionCount) int {
		if c := strings.Compare(a.Format, b.Format); c != 0 {
			return c
		}
		if c, err := inventory.CompareVersions(a.Format, a.Version, b.Version); err == nil && c != 0 {
			return -c
		}
		return strings.Compare(b.Version, a.Version)
	})
	out := proto.PackageVersions{Name: name, Versions: vs}
	if out.Versions == nil {
		out.Versions = []proto.PackageVersionCount{}
	}
	for _, v := range vs {
		out.Devices += v.Devices
	}
	return out, nil
}

// FactDistribution answers GET /inventory/facts/{fact}: the fact's values,
// most common first.
func (s *Service) FactDistribution(ctx context.Context, fact string) (proto.FactDistribution, error) {
	if !slices.Contains(proto.InventoryFacts, fact) {
		return proto.FactDistribution{}, Errorf("unknown_fact", "unknown fact %q (want one of %s)", fact, strings.Join(proto.InventoryFacts, ", "))
	}
	vs, err := s.st.FactValues(ctx, fact)
	if err != nil {
		return proto.FactDistribution{}, fmt.Errorf("reading fact values: %w", err)
	}
	slices.SortStableFunc(vs, func(a, b proto.FactValueCount) int {
		return cmp.Or(cmp.Compare(b.Devices, a.Devices), strings.Compare(a.Value, b.Value))
	})
	if vs == nil {
		vs = []proto.FactValueCount{}
	}
	return proto.FactDistribution{Fact: fact, Values: vs}, nil
}

// InventoryFilter parses the inventory filters of GET /devices; ok is false
// when there are none.
func InventoryFilter(q url.Values) (store.InventoryQuery, bool, error) {
	iq, ok, err := inventory.ParseQuery(q)
	if err != nil {
		return iq, false, Errorf("invalid_query", "%v", err)
	}
	return iq, ok, nil
}

// FindDevices pages through the devices an inventory query matches, in id
// order (see store.InventoryStore.FindDevices).
func (s *Service) FindDevices(ctx context.Context, q store.InventoryQuery, after string, limit int) ([]string, bool, error) {
	ids, more, err := s.st.FindDevices(ctx, q, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("querying inventory: %w", err)
	}
	return ids, more, nil
}
