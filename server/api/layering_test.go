package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestHandlersGoThroughService: the API is HTTP only. Its non-test files
// may name the storage package's types, constants and error values (the
// shapes the service hands back), but never a storage interface or a
// storage function, and never import a backend or the policy rules:
// every handler goes through server/service.
func TestHandlersGoThroughService(t *testing.T) {
	const mod = "github.com/doorbell-mdm/doorbell/server/"
	funcs, ifaces := storeDecls(t, "../store")
	if len(funcs) == 0 || len(ifaces) == 0 {
		t.Fatalf("read no functions (%d) or interfaces (%d) of server/store", len(funcs), len(ifaces))
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		storeName := ""
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == mod+"store":
				storeName = "store"
				if imp.Name != nil {
					storeName = imp.Name.Name
				}
			case strings.HasPrefix(path, mod+"store/"), path == mod+"policy":
				bad = append(bad, fset.Position(imp.Pos()).String()+": imports "+path)
			}
		}
		if storeName == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == storeName {
				switch {
				case funcs[sel.Sel.Name]:
					bad = append(bad, fset.Position(sel.Pos()).String()+": calls store."+sel.Sel.Name+" (a storage function)")
				case ifaces[sel.Sel.Name]:
					bad = append(bad, fset.Position(sel.Pos()).String()+": names store."+sel.Sel.Name+" (a storage interface)")
				}
			}
			return true
		})
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// storeDecls returns the exported functions and interface types of the
// package in dir (non-test files).
func storeDecls(t *testing.T, dir string) (funcs, ifaces map[string]bool) {
	t.Helper()
	funcs, ifaces = map[string]bool{}, map[string]bool{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					funcs[d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.IsExported() {
						if _, ok := ts.Type.(*ast.InterfaceType); ok {
							ifaces[ts.Name.Name] = true
						}
					}
				}
			}
		}
	}
	return funcs, ifaces
}
