package agent

import (
	"context"
	"fmt"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Collector reads the device's inventory. It only reads: collecting never
// changes the device. Implementations must be safe for concurrent use and
// deterministic (the same device gives the same JSON, lists sorted), so
// an unchanged section keeps its hash.
type Collector interface {
	// Collect returns the sections it could read. A section it could not
	// read is left out (nil) and named in the error, which joins one error
	// per such section; the agent still sends the rest, and the server
	// keeps its last copy of a section left out.
	Collect(ctx context.Context) (proto.Inventory, error)
}

// JSONCollector adapts a collector that produces the inventory as JSON
// sections ({"system": {...}, "packages": {...}}, the form of
// proto.Inventory) — the shape an Android app hands over through the
// gomobile facade, which cannot pass Go structs. The JSON is parsed and
// validated with proto.ParseInventory; invalid JSON is an error and
// yields no sections.
type JSONCollector func(ctx context.Context) ([]byte, error)

var _ Collector = JSONCollector(nil)

// Collect implements Collector.
func (f JSONCollector) Collect(ctx context.Context) (proto.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return proto.Inventory{}, err
	}
	b, err := f(ctx)
	if err != nil {
		return proto.Inventory{}, fmt.Errorf("collecting inventory: %w", err)
	}
	inv, err := proto.ParseInventory(b)
	if err != nil {
		return proto.Inventory{}, fmt.Errorf("collecting inventory: %w", err)
	}
	return inv, nil
}
