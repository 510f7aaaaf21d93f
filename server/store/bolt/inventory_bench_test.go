package bolt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/inventory"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// The fleet the inventory benchmarks query: DOORBELL_BENCH_DEVICES devices
// (default 100,000), each with DOORBELL_BENCH_PACKAGES packages (default
// 60: openssl plus draws from a pool of 3,000 names), over four
// distributions. Seeding it is itself measured: the ingest rate of
// concurrent full uploads, with every index maintained.
func benchEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type benchFleet struct {
	dir     string
	s       *Store
	ids     []string
	ingest  float64 // uploads per second while seeding
	seedDur time.Duration
}

var (
	fleetOnce sync.Once
	fleet     benchFleet
	fleetErr  error
)

var benchOS = []struct {
	id, version, kernel, format string
	openssl                     []string
}{
	{"debian", "12", "6.1.0-%d-amd64", proto.FormatDeb, []string{"3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "3.0.9-1"}},
	{"ubuntu", "22.04", "5.15.0-%d-generic", proto.FormatDeb, []string{"3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.15"}},
	{"fedora", "40", "6.8.%d-301.fc40.x86_64", proto.FormatRPM, []string{"1:3.2.1-2.fc40", "1:3.2.2-3.fc40"}},
	{"alpine", "3.20.3", "6.6.%d-0-lts", proto.FormatAPK, []string{"3.3.2-r1", "3.3.2-r0"}},
}

func benchInventory(i, npkg int) proto.Inventory {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	o := benchOS[[]int{0, 0, 0, 0, 0, 1, 1, 2, 2, 3}[i%10]]
	inv := proto.Inventory{
		System: &proto.InventorySystem{Hostname: fmt.Sprintf("host-%06d", i), OSID: o.id, OSVersion: o.version,
			Kernel: fmt.Sprintf(o.kernel, 10+r.IntN(20)), Arch: "x86_64"},
		Hardware: &proto.InventoryHardware{Vendor: "ACME", Model: fmt.Sprintf("Kiosk K%d", r.IntN(8)), Serial: fmt.Sprintf("SN%08d", i), CPUCount: 4},
		Network: &proto.InventoryNetwork{Interfaces: []proto.InventoryInterface{{Name: "eth0", Up: true,
			MAC:       fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", i>>24&255, i>>16&255, i>>8&255, i&255),
			Addresses: []string{fmt.Sprintf("10.%d.%d.%d/16", i>>16&255, i>>8&255, i&255)}}}},
		Packages: &proto.InventoryPackages{Format: o.format, Packages: []proto.InventoryPackage{
			{Name: "openssl", Version: o.openssl[r.IntN(len(o.openssl))]}}},
	}
	seen := map[int]bool{}
	for len(inv.Packages.Packages) < npkg {
		n := r.IntN(3000)
		if seen[n] {
			continue
		}
		seen[n] = true
		inv.Packages.Packages = append(inv.Packages.Packages, proto.InventoryPackage{Name: fmt.Sprintf("pkg%04d", n), Version: fmt.Sprintf("1.%d-1", r.IntN(4))})
	}
	return inv
}

func seedFleet(b *testing.B) benchFleet {
	fleetOnce.Do(func() {
		n, npkg := benchEnv("DOORBELL_BENCH_DEVICES", 100000), benchEnv("DOORBELL_BENCH_PACKAGES", 60)
		dir, err := os.MkdirTemp("", "doorbell-inventory-bench-")
		if err != nil {
			fleetErr = err
			return
		}
		s, err := Open(filepath.Join(dir, "db"))
		if err != nil {
			fleetErr = err
			return
		}
		ctx := context.Background()
		ids := make([]string, n)
		// The devices are created, and all but the first inventories
		// stored, in large transactions through the store's own write
		// functions (createDevice, saveInventory: the same records and
		// indexes an upload writes), without an fsync per commit; one
		// sync at the end. Thousands of devices share each commit, so the
		// index pages they touch are written once per chunk rather than
		// once per device.
		chunk := benchEnv("DOORBELL_BENCH_CHUNK", 10000)
		bulk := func(lo, hi int, fn func(w *writer, i int) error) error {
			s.db.NoSync = true
			defer func() { s.db.NoSync = false }()
			for c := lo; c < hi; c += chunk {
				if err := s.run(s.db.Update, func(w *writer) error {
					for i := c; i < min(c+chunk, hi); i++ {
						if err := fn(w, i); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return s.db.Sync()
		}
		createStart := time.Now()
		fleetErr = bulk(0, n, func(w *writer, i int) error {
			ids[i] = fmt.Sprintf("dev-%07d", i)
			_, err := createDevice(w, store.Device{ID: ids[i], SecretHash: []byte(ids[i]), Policy: proto.DevicePolicy{Version: 1}})
			return err
		})
		createDur := time.Since(createStart)
		if fleetErr != nil {
			return
		}
		// The first devices go through SaveInventory from concurrent
		// writers, as uploads do (group commit, one fsync per group): that
		// is the ingest rate.
		measured := min(n, benchEnv("DOORBELL_BENCH_INGEST", 2000))
		const writers = 64
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < measured; i = int(next.Add(1) - 1) {
					inv := benchInventory(i, npkg)
					if _, err := s.SaveInventory(ctx, ids[i], proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv}, start); err != nil && fleetErr == nil {
						fleetErr = err
					}
				}
			})
		}
		wg.Wait()
		d := time.Since(start)
		if fleetErr != nil {
			return
		}
		bulkStart := time.Now()
		fleetErr = bulk(measured, n, func(w *writer, i int) error {
			inv := benchInventory(i, npkg)
			_, err := saveInventory(w.tx, ids[i], proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv}, start)
			return err
		})
		bulkDur := time.Since(bulkStart)
		fleet = benchFleet{dir: dir, s: s, ids: ids, ingest: float64(measured) / d.Seconds(), seedDur: time.Since(createStart)}
		fi, _ := os.Stat(filepath.Join(dir, "db"))
		fmt.Fprintf(os.Stderr, "inventory fleet: %d devices x %d packages; devices created in %v; ingest %d concurrent uploads in %v (%.0f uploads/s); %d more inventories bulk-loaded in %v (%.0f/s, %d per transaction); db %d MiB in %s\n",
			n, npkg, createDur.Round(time.Millisecond), measured, d.Round(time.Millisecond), fleet.ingest,
			n-measured, bulkDur.Round(time.Millisecond), float64(n-measured)/bulkDur.Seconds(), chunk, fi.Size()>>20, dir)
	})
	if fleetErr != nil {
		b.Fatal(fleetErr)
	}
	return fleet
}

// TestMain removes the benchmark fleet's database (hundreds of MiB at
// 100,000 devices) when the package's tests and benchmarks are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if fleet.s != nil {
		fleet.s.Close()
		os.RemoveAll(fleet.dir)
	}
	os.Exit(code)
}

func versionBelow(max string) func(format, version string) bool {
	return func(format, version string) bool {
		c, err := inventory.CompareVersions(format, version, max)
		return err == nil && c < 0
	}
}

// BenchmarkInventoryQueries times the fleet questions against the seeded
// fleet.
func BenchmarkInventoryQueries(b *testing.B) {
	f := seedFleet(b)
	ctx := context.Background()
	b.Run("ingest", func(b *testing.B) {
		for range b.N {
		}
		b.ReportMetric(f.ingest, "uploads/s")
	})
	b.Run("PackageVersions", func(b *testing.B) {
		for range b.N {
			if v, err := f.s.PackageVersions(ctx, "openssl"); err != nil || len(v) == 0 {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("FactValues/os", func(b *testing.B) {
		for range b.N {
			if v, err := f.s.FactValues(ctx, proto.FactOS); err != nil || len(v) != 4 {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("FactValues/kernel", func(b *testing.B) {
		for range b.N {
			if v, err := f.s.FactValues(ctx, proto.FactKernel); err != nil || len(v) == 0 {
				b.Fatal(v, err)
			}
		}
	})
	find := func(name string, q store.InventoryQuery, limit int) {
		b.Run("FindDevices/"+name, func(b *testing.B) {
			var got int
			for range b.N {
				ids, _, err := f.s.FindDevices(ctx, q, "", limit)
				if err != nil {
					b.Fatal(err)
				}
				got = len(ids)
			}
			b.ReportMetric(float64(got), "devices")
		})
	}
	find("os=debian_12,page50", store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactOS, Equal: "debian 12"}}}, 50)
	find("os=debian_12,all", store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactOS, Equal: "debian 12"}}}, len(f.ids))
	find("openssl<3.0.11,all", store.InventoryQuery{Packages: []store.PackageCond{{Name: "openssl", Match: versionBelow("3.0.11")}}}, len(f.ids))
	find("kernel<6.1,page50", store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactKernel, Match: func(v string) bool {
		c, err := inventory.CompareVersions("", v, "6.1")
		return err == nil && c < 0
	}}}}, 50)
	hostHas := func(v string) bool { return strings.Contains(strings.ToLower(v), "12345") }
	// As the API builds it (Contains: the trigram index), and as a scan of
	// every distinct hostname (the index's baseline).
	find("hostname~=12345", store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Contains: "12345", Match: hostHas}}}, 50)
	find("hostname~=12345,scan", store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Match: hostHas}}}, 50)
	find("serial=", store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactSerial, Equal: "SN00054321"}}}, 50)
	find("os.id=debian&openssl<3.0.11&model=K3", store.InventoryQuery{
		Facts:    []store.FactCond{{Fact: proto.FactOSID, Equal: "debian"}, {Fact: proto.FactModel, Equal: "Kiosk K3"}},
		Packages: []store.PackageCond{{Name: "openssl", Match: versionBelow("3.0.11")}}}, len(f.ids))
	b.Run("Inventory", func(b *testing.B) {
		for i := range b.N {
			if _, err := f.s.Inventory(ctx, f.ids[i%len(f.ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SaveInventory/changed-packages", func(b *testing.B) {
		for i := range b.N {
			id := i % len(f.ids)
			inv := benchInventory(id, benchEnv("DOORBELL_BENCH_PACKAGES", 60))
			inv.Packages.Packages[0].Version = fmt.Sprintf("9.%d", i)
			up := proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv.Only([]string{proto.SectionPackages})}
			if _, err := f.s.SaveInventory(ctx, f.ids[id], up, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
