package store

import (
	"context"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// InventoryStore keeps each device's latest inventory and the fleet indexes
// that answer questions about many devices without decoding each one: per
// package name, its installed versions with the devices that have each;
// per fact (proto.Inventory.Facts), its values with their devices. Both are
// maintained on write, with counts, so a distribution is a read of the
// counts alone.
type InventoryStore interface {
	// SaveInventory merges up into the device's inventory at time at: each
	// section up carries replaces the stored one (its ChangedAt moves only
	// when its hash differs); a section up does not carry is kept. missing
	// lists, in proto.InventorySections order, the sections up.Hashes names
	// whose hash the store does not hold after the write. It returns
	// ErrNotFound, storing nothing, for an unknown device. The caller
	// validates up.
	SaveInventory(ctx context.Context, id string, up proto.InventoryUpload, at time.Time) (missing []string, err error)
	// Inventory returns the device's stored inventory (no sections and zero
	// times when it never sent one), or ErrNotFound for an unknown device.
	Inventory(ctx context.Context, id string) (proto.DeviceInventory, error)
	// PackageVersions returns the installed versions of the package called
	// name with their device counts, in format then version byte order (the
	// caller sorts by version); none when no device has it.
	PackageVersions(ctx context.Context, name string) ([]proto.PackageVersionCount, error)
	// FactValues returns the values of fact with their device counts, in
	// value byte order; none for a fact no device has.
	FactValues(ctx context.Context, fact string) ([]proto.FactValueCount, error)
	// FindDevices returns, in id order, up to limit ids greater than after of
	// the devices that satisfy every condition of q, and whether more may
	// follow. An empty query matches every device with an inventory.
	FindDevices(ctx context.Context, q InventoryQuery, after string, limit int) (ids []string, more bool, err error)
}

// InventoryQuery is a conjunction of conditions on facts and packages.
type InventoryQuery struct {
	Facts    []FactCond
	Packages []PackageCond
}

// FactCond holds for a device that has a value of Fact that Match accepts
// (every value when Match is nil). Match runs once per distinct value.
type FactCond struct {
	Fact  string
	Match func(value string) bool
	// Equal, when not empty and Match is nil, is the one value accepted, so
	// the store looks it up instead of scanning the values.
	Equal string
	// Contains, when not empty, says Match accepts only values that
	// contain it case-insensitively (it is lower case), so a store with a
	// substring index may run Match on the values the index yields
	// instead of on every value.
	Contains string
}

// PackageCond holds for a device that has the package Name in a version
// Match accepts (any version when Match is nil). Match runs once per
// distinct format and version.
type PackageCond struct {
	Name  string
	Match func(format, version string) bool
}
