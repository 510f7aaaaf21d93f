package inventory

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// The comparison suffixes of a filter key: ?kernel.lt=6.1,
// ?package.ge=3.0.11.
var comparisons = map[string]func(c int) bool{
	"lt": func(c int) bool { return c < 0 },
	"le": func(c int) bool { return c <= 0 },
	"gt": func(c int) bool { return c > 0 },
	"ge": func(c int) bool { return c >= 0 },
	"eq": func(c int) bool { return c == 0 },
}

// IsFilterKey reports whether a query parameter of GET /devices is an
// inventory filter (a fact, "package", either with ~ or a comparison
// suffix), so the list handler knows which parameters ParseQuery owns.
func IsFilterKey(key string) bool {
	base := strings.TrimSuffix(key, "~")
	if base == "package" || slices.Contains(proto.InventoryFacts, base) {
		return true
	}
	if i := strings.LastIndexByte(key, '.'); i > 0 {
		b := key[:i]
		return b == "package" || slices.Contains(proto.InventoryFacts, b)
	}
	return false
}

// ParseQuery turns the inventory filters of GET /devices into a store
// query; other parameters are ignored. ok is false when there is no
// inventory filter at all.
//
//	?<fact>=v          the fact has the value v
//	?<fact>~=v         a value contains v, case-insensitively
//	?<fact>.lt=v       a value is older than v (.le .gt .ge .eq), compared
//	                   as a Debian version (kernels, Android versions)
//	?package=NAME      the package is installed, in any version
//	?package.lt=V      ... in a version older than V (.le .gt .ge .eq),
//	                   compared by the package's own format
//
// Several filters must all hold. A comparison on packages needs exactly one
// package=NAME. An unknown fact, operator or empty value is an error.
func ParseQuery(v url.Values) (q store.InventoryQuery, ok bool, err error) {
	keys := make([]string, 0, len(v))
	for k := range v {
		if IsFilterKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var pkgOps []func(format, version string) bool
	var pkgNames []string
	for _, key := range keys {
		for _, val := range v[key] {
			if val == "" {
				return q, false, fmt.Errorf("filter %s needs a value", key)
			}
			base, op := key, ""
			switch {
			case key == "package" || slices.Contains(proto.InventoryFacts, key):
			case strings.HasSuffix(key, "~"):
				base, op = strings.TrimSuffix(key, "~"), "~"
			default:
				i := strings.LastIndexByte(key, '.')
				base, op = key[:i], key[i+1:]
				if comparisons[op] == nil {
					return q, false, fmt.Errorf("filter %s: unknown operator %q (want lt, le, gt, ge, eq or ~)", key, op)
				}
			}
			if base == "package" {
				switch op {
				case "":
					pkgNames = append(pkgNames, val)
				case "~":
					return q, false, fmt.Errorf("filter package~: package names match exactly")
				default:
					pkgOps = append(pkgOps, versionMatch(op, val))
				}
				continue
			}
			q.Facts = append(q.Facts, factCond(base, op, val))
		}
	}
	if len(pkgOps) > 0 && len(pkgNames) != 1 {
		return q, false, fmt.Errorf("a package version filter needs exactly one package=NAME, got %d", len(pkgNames))
	}
	for _, name := range pkgNames {
		c := store.PackageCond{Name: name}
		if len(pkgOps) > 0 {
			ops := pkgOps
			c.Match = func(format, version string) bool {
				for _, m := range ops {
					if !m(format, version) {
						return false
					}
				}
				return true
			}
		}
		q.Packages = append(q.Packages, c)
	}
	return q, len(q.Facts)+len(q.Packages) > 0, nil
}

func versionMatch(op, want string) func(format, version string) bool {
	cmp := comparisons[op]
	return func(format, version string) bool {
		c, err := CompareVersions(format, version, want)
		return err == nil && cmp(c)
	}
}

func factCond(fact, op, val string) store.FactCond {
	switch op {
	case "":
		return store.FactCond{Fact: fact, Equal: val}
	case "~":
		low := strings.ToLower(val)
		return store.FactCond{Fact: fact, Contains: low, Match: func(v string) bool { return strings.Contains(strings.ToLower(v), low) }}
	}
	m := versionMatch(op, val)
	return store.FactCond{Fact: fact, Match: func(v string) bool { return m("", v) }}
}
