package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// errNoInventory is returned until PostgreSQL stores inventory.
var errNoInventory = errors.New("inventory is not stored on PostgreSQL yet")

func (s *Store) SaveInventory(ctx context.Context, id string, up proto.InventoryUpload, at time.Time) ([]string, error) {
	return nil, errNoInventory
}

func (s *Store) Inventory(ctx context.Context, id string) (proto.DeviceInventory, error) {
	return proto.DeviceInventory{}, errNoInventory
}

func (s *Store) PackageVersions(ctx context.Context, name string) ([]proto.PackageVersionCount, error) {
	return nil, errNoInventory
}

func (s *Store) FactValues(ctx context.Context, fact string) ([]proto.FactValueCount, error) {
	return nil, errNoInventory
}

func (s *Store) FindDevices(ctx context.Context, q store.InventoryQuery, after string, limit int) ([]string, bool, error) {
	return nil, false, errNoInventory
}
