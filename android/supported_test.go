package doorbell

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

// appSupported returns the settings the app's DpmEnforcer supports, read
// from its source: the names in `SUPPORTED = setOf(...)`, resolved through
// its `const val NAME = "setting"` declarations.
func appSupported(t *testing.T) []string { return appSupportedIn(t, "DpmEnforcer.kt") }

// appSupportedIn reads `SUPPORTED = setOf(...)` of one of the app's Kotlin
// files, resolved through its `const val NAME = "name"` declarations.
func appSupportedIn(t *testing.T, file string) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("app", "src", "main", "java", "org", "doorbellmdm", "agent", file))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, m := range regexp.MustCompile(`const val (\w+) = "(\w+)"`).FindAllStringSubmatch(string(src), -1) {
		consts[m[1]] = m[2]
	}
	m := regexp.MustCompile(`(?s)val SUPPORTED = setOf\((.*?)\)`).FindStringSubmatch(string(src))
	if m == nil {
		t.Fatalf("%s has no `val SUPPORTED = setOf(...)`", file)
	}
	var out []string
	for _, id := range strings.Split(m[1], ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		name, ok := consts[id]
		if !ok {
			t.Fatalf("%s: SUPPORTED names %s, which is no `const val` of a name", file, id)
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// TestAppSupportedSettings keeps the app, the binding test's DPM stand-in
// and the policy in step: every setting the app's DpmEnforcer supports is a
// setting of the policy, and the harness's stand-in enforcer supports exactly
// the same ones, so the binding test drives what the app really enforces.
func TestAppSupportedSettings(t *testing.T) {
	app := appSupported(t)
	for _, name := range app {
		if !proto.IsSetting(name) {
			t.Errorf("DpmEnforcer supports %q, which is not a setting of the policy", name)
		}
	}
	// The catalog's Android column (docs/POLICY.md) names exactly these.
	var catalog []string
	for _, d := range proto.Catalog() {
		if d.Platforms[proto.PlatformAndroid] != "" {
			catalog = append(catalog, d.Name)
		}
	}
	slices.Sort(catalog)
	if !slices.Equal(app, catalog) {
		t.Errorf("DpmEnforcer supports %v, the catalog lists %v for Android: keep them the same", app, catalog)
	}
	h, err := os.ReadFile(filepath.Join("testdata", "harness", "Harness.java"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)List<String> SUPPORTED = List\.of\((.*?)\);`).FindSubmatch(h)
	if m == nil {
		t.Fatal("Harness.java has no `List<String> SUPPORTED = List.of(...)`")
	}
	var harness []string
	for _, q := range regexp.MustCompile(`"(\w+)"`).FindAllSubmatch(m[1], -1) {
		harness = append(harness, string(q[1]))
	}
	slices.Sort(harness)
	if !slices.Equal(app, harness) {
		t.Errorf("DpmEnforcer supports %v, the harness's stand-in %v: keep them the same", app, harness)
	}
	t.Logf("the app supports %d of %d settings: %v", len(app), len(proto.SettingNames), app)
}

// TestAppSupportedCommands keeps the app's DpmExecutor and the command
// catalog in step: every type it supports is a command type, it supports
// every type the catalog documents for Android, and every param it reads
// (optString("...")) is a param of the catalog.
func TestAppSupportedCommands(t *testing.T) {
	app := appSupportedIn(t, "DpmExecutor.kt")
	var android []string
	params := map[string]bool{}
	for _, c := range proto.CommandTypes {
		if strings.Contains(c.Doc, "Android") {
			android = append(android, string(c.Type))
		}
		for _, p := range c.Params {
			params[p.Name] = true
		}
	}
	for _, name := range app {
		if _, ok := proto.LookupCommand(proto.CommandType(name)); !ok {
			t.Errorf("DpmExecutor supports %q, which is not a command type", name)
		}
	}
	slices.Sort(android)
	if !slices.Equal(app, android) {
		t.Errorf("DpmExecutor supports %v, the command catalog documents %v for Android: keep them the same", app, android)
	}
	src, err := os.ReadFile(filepath.Join("app", "src", "main", "java", "org", "doorbellmdm", "agent", "DpmExecutor.kt"))
	if err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`optString\("(\w+)"\)`).FindAllStringSubmatch(string(src), -1)
	if len(read) == 0 {
		t.Fatal("DpmExecutor.kt reads no param (optString)")
	}
	for _, m := range read {
		if !params[m[1]] {
			t.Errorf("DpmExecutor reads param %q, which no command of the catalog has", m[1])
		}
	}
	t.Logf("the app carries out %d of %d command types: %v", len(app), len(proto.CommandTypes), app)
}

// TestNoPerSettingGo: the Go side of the boundary names no setting, so a
// setting added to the catalog reaches the app with no change in android/.
func TestNoPerSettingGo(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		// Code only: comments may give examples.
		var code strings.Builder
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "//") {
				code.WriteString(line + "\n")
			}
		}
		for _, m := range regexp.MustCompile(`proto\.Setting[A-Z]\w*`).FindAllString(code.String(), -1) {
			if m != "proto.SettingNames" && m != "proto.SettingValues" {
				t.Errorf("%s names the setting constant %s: the boundary must stay generic", f, m)
			}
		}
		for _, name := range proto.SettingNames {
			if strings.Contains(code.String(), `"`+name+`"`) {
				t.Errorf("%s names the setting %q: the boundary must stay generic", f, name)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Go source checked")
	}
}
