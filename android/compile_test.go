package doorbell

import (
	"bufio"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAppCompiles compiles the Android app (android/app) without Gradle or
// the Android SDK, so a Kotlin error, a wrong call into the Go bindings or a
// framework member the app's minSdk lacks fails `make test`:
//
//   - Kotlin from the npm package kotlin-compiler, at the version the app's
//     Gradle plugin names in build.gradle.kts;
//   - the API 23 android.jar from Debian's libandroid-23-java (fetched by
//     testdata/compile/fetch.sh into a cache outside the tree: a second run
//     downloads nothing);
//   - R.java from the app's res/ with Debian's aapt, and a BuildConfig.java
//     as the Android Gradle plugin writes it;
//   - the gobind-generated Java of this package;
//   - compile-only stubs of the androidx.work / androidx.core / Firebase
//     classes the app uses (testdata/compile/stubs), and shadows of the
//     framework members newer than API 23 (testdata/compile/shadow), each
//     checked against android.jar here.
//
// It also checks that every class the manifest names was compiled and every
// resource it names exists. What it cannot see is the libraries' behaviour
// behind the stubs (docs/ANDROID.md). `go test -short` skips it.
func TestAppCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the app's compile check")
	}
	if runtime.GOOS != "linux" {
		t.Skipf("the compile check fetches Debian packages; GOOS is %s", runtime.GOOS)
	}
	start := time.Now()
	app, err := filepath.Abs(filepath.Join("app"))
	if err != nil {
		t.Fatal(err)
	}
	tools := findJavaTools(t)
	aapt, err := exec.LookPath("aapt")
	if err != nil {
		t.Fatal("the compile check needs aapt (Debian package aapt): `make deps` installs it as root; `go test -short` skips this test")
	}

	// Kotlin, at the Gradle plugin's version, and android.jar.
	gradle, err := os.ReadFile(filepath.Join(app, "build.gradle.kts"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`id\("org\.jetbrains\.kotlin\.android"\)\s+version\s+"([0-9.]+)"`).FindSubmatch(gradle)
	if m == nil {
		t.Fatal(`build.gradle.kts names no org.jetbrains.kotlin.android plugin version`)
	}
	kotlinVersion := string(m[1])
	out, err := exec.Command("sh", filepath.Join("testdata", "compile", "fetch.sh"), kotlinVersion).CombinedOutput()
	if err != nil {
		t.Fatalf("testdata/compile/fetch.sh %s: %v\n%s", kotlinVersion, err, out)
	}
	var kotlinc, androidJar string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "KOTLINC="); ok {
			kotlinc = v
		}
		if v, ok := strings.CutPrefix(line, "ANDROID_JAR="); ok {
			androidJar = v
		}
	}
	if kotlinc == "" || androidJar == "" {
		t.Fatalf("fetch.sh printed no KOTLINC= or ANDROID_JAR= line:\n%s", out)
	}
	t.Logf("Kotlin %s and the API 23 android.jar ready in %v", kotlinVersion, time.Since(start).Round(time.Millisecond))

	work := t.TempDir()
	gen := generatedJava(t)

	// R.java: aapt with a manifest that only names the package (the app's
	// own manifest uses attributes newer than API 23, which aapt would
	// reject against this android.jar; it is checked below instead).
	const pkg = "org.doorbellmdm.agent"
	rDir := filepath.Join(work, "r")
	if err := os.MkdirAll(rDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "AndroidManifest.xml"),
		`<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="`+pkg+`"/>`)
	run(t, work, nil, aapt, "package", "-f", "-m", "-J", rDir, "-M", filepath.Join(work, "AndroidManifest.xml"),
		"-S", filepath.Join(app, "src", "main", "res"), "-I", androidJar)
	// BuildConfig, as the Android Gradle plugin writes it for this app.
	writeFile(t, filepath.Join(work, "buildconfig", "BuildConfig.java"), `package `+pkg+`;

public final class BuildConfig {
  public static final boolean DEBUG = false;
  public static final String APPLICATION_ID = "`+pkg+`";
  public static final String BUILD_TYPE = "release";
  public static final int VERSION_CODE = 1;
  public static final String VERSION_NAME = "compile-check";
  public static final String SERVER_URL = "https://mdm.example.com";
  public static final String ENROLL_TOKEN = "";
  public static final boolean KIOSK = false;
}
`)

	// The framework shadows, then the stubs, the bindings, R and BuildConfig.
	shadowSrc, _ := filepath.Abs(filepath.Join("testdata", "compile", "shadow"))
	shadowClasses := filepath.Join(work, "shadow")
	javac(t, tools.javac, shadowClasses, androidJar, javaFiles(t, shadowSrc))
	checkShadows(t, shadowSrc, shadowClasses, androidJar)

	stubSrc, _ := filepath.Abs(filepath.Join("testdata", "compile", "stubs"))
	libClasses := filepath.Join(work, "lib")
	var libSources []string
	for _, dir := range []string{stubSrc, gen, rDir, filepath.Join(work, "buildconfig")} {
		libSources = append(libSources, javaFiles(t, dir)...)
	}
	javac(t, tools.javac, libClasses, shadowClasses+string(os.PathListSeparator)+androidJar, libSources)
	t.Logf("stubs, shadows, bindings and R compiled in %v", time.Since(start).Round(time.Millisecond))

	// The app's Kotlin.
	ktSources := filesWithSuffix(t, filepath.Join(app, "src", "main", "java"), ".kt")
	appClasses := filepath.Join(work, "app")
	cp := strings.Join([]string{shadowClasses, libClasses, androidJar}, string(os.PathListSeparator))
	args := append([]string{"-jvm-target", "17", "-no-reflect", "-classpath", cp, "-d", appClasses}, ktSources...)
	cmd := exec.Command(kotlinc, args...)
	cmd.Env = append(os.Environ(), "JAVA_OPTS=-Xmx1g -XX:TieredStopAtLevel=1")
	kout, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kotlinc: the app does not compile: %v\n%s", err, kout)
	}
	if s := strings.TrimSpace(string(kout)); s != "" {
		t.Logf("kotlinc warnings:\n%s", s)
	}

	checkManifest(t, filepath.Join(app, "src", "main", "AndroidManifest.xml"), pkg, appClasses, filepath.Join(rDir, "org", "doorbellmdm", "agent", "R.java"))
	t.Logf("the app compiled (%d Kotlin files, Kotlin %s, API 23 android.jar + shadows) in %v",
		len(ktSources), kotlinVersion, time.Since(start).Round(time.Millisecond))
}

func javac(t *testing.T, javac, outDir, classpath string, sources []string) {
	t.Helper()
	args := append([]string{"-nowarn", "-encoding", "UTF-8", "-d", outDir, "-cp", classpath}, sources...)
	run(t, filepath.Dir(outDir), nil, javac, args...)
}

func javaFiles(t *testing.T, dir string) []string { return filesWithSuffix(t, dir, ".java") }

func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, suffix) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no %s files in %s", suffix, dir)
	}
	return out
}

// javapMembers lists the public members of class (a binary name) as javap
// prints them with constant values, one normalized line each.
func javapMembers(t *testing.T, classpath, class string) (members []string, found bool) {
	t.Helper()
	out, err := exec.Command("javap", "-public", "-constants", "-cp", classpath, class).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "class not found") {
			return nil, false
		}
		t.Fatalf("javap %s: %v\n%s", class, err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line == "}" || strings.HasPrefix(line, "Compiled from") || strings.HasSuffix(line, "{") {
			continue
		}
		members = append(members, strings.TrimSuffix(line, ";"))
	}
	return members, true
}

var apiMarker = regexp.MustCompile(`// API (\d+)\b`)

// checkShadows checks every shadow class, and every class nested in one,
// against android.jar: a member android.jar has is declared identically
// (signature and constant value); one it lacks is marked `// API NN` with
// NN > 23 on its declaration line; a class android.jar lacks is marked on
// its class (or interface) line.
func checkShadows(t *testing.T, src, classes, androidJar string) {
	t.Helper()
	for _, file := range javaFiles(t, src) {
		rel, _ := filepath.Rel(src, file)
		class := strings.ReplaceAll(strings.TrimSuffix(rel, ".java"), string(filepath.Separator), ".")
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(text), "\n")
		newer := func(name string) bool {
			for _, l := range lines {
				if !strings.Contains(l, " "+name+"(") && !strings.Contains(l, " "+name+" =") &&
					!strings.Contains(l, "class "+name+" ") && !strings.Contains(l, "interface "+name+" ") {
					continue
				}
				if m := apiMarker.FindStringSubmatch(l); m != nil {
					n, _ := strconv.Atoi(m[1])
					return n > 23
				}
			}
			return false
		}
		// The class, then its named nested classes (Outer$Inner.class).
		all := []string{class}
		nested, _ := filepath.Glob(filepath.Join(classes, strings.TrimSuffix(rel, ".java")+"$*.class"))
		for _, n := range nested {
			inner := strings.TrimSuffix(filepath.Base(n), ".class")
			if r := inner[strings.LastIndex(inner, "$")+1:]; r != "" && (r[0] < '0' || r[0] > '9') {
				all = append(all, class[:strings.LastIndex(class, ".")+1]+inner)
			}
		}
		for _, c := range all {
			checkShadowClass(t, c, classes, androidJar, newer)
		}
	}
}

// checkShadowClass checks one shadow class (a binary name) against
// android.jar; newer reports whether its source marks a name // API NN.
func checkShadowClass(t *testing.T, class, classes, androidJar string, newer func(name string) bool) {
	t.Helper()
	simple := class[strings.LastIndexAny(class, ".$")+1:]
	shadow, ok := javapMembers(t, classes, class)
	if !ok {
		t.Fatalf("shadow %s was not compiled", class)
	}
	real, inJar := javapMembers(t, androidJar, class)
	if !inJar {
		if !newer(simple) {
			t.Errorf("shadow %s: android.jar (API 23) has no such class; mark its class line // API NN", class)
		}
		return
	}
	for _, mem := range shadow {
		if slices.Contains(real, mem) {
			continue
		}
		name := memberName(mem)
		if !newer(name) {
			t.Errorf("shadow %s: %q is not in android.jar (API 23) as declared; fix its signature or mark it // API NN", class, mem)
		}
	}
}

// memberName returns the member's name from a javap line.
func memberName(decl string) string {
	if i := strings.Index(decl, " = "); i >= 0 {
		decl = decl[:i]
	}
	if i := strings.Index(decl, "("); i >= 0 {
		decl = decl[:i]
	}
	name := decl[strings.LastIndex(decl, " ")+1:]
	return name[strings.LastIndexAny(name, ".$")+1:]
}

// checkManifest checks that every component class the manifest names was
// compiled from the app's sources and every @string/@xml resource it names
// is in R.java.
func checkManifest(t *testing.T, manifest, pkg, classes, rJava string) {
	t.Helper()
	f, err := os.Open(manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := os.ReadFile(rJava)
	if err != nil {
		t.Fatal(err)
	}
	const androidNS = "http://schemas.android.com/apk/res/android"
	dec := xml.NewDecoder(f)
	var components int
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Space != androidNS {
				continue
			}
			if kind, name, ok := strings.Cut(strings.TrimPrefix(a.Value, "@"), "/"); ok && strings.HasPrefix(a.Value, "@") && !strings.HasPrefix(a.Value, "@android:") {
				if !regexp.MustCompile(`class ` + kind + ` \{[^}]*\b` + regexp.QuoteMeta(name) + `=`).Match(r) {
					t.Errorf("manifest <%s %s=%q>: no such resource in res/", el.Name.Local, a.Name.Local, a.Value)
				}
			}
			var class string
			switch {
			case a.Name.Local == "name" && slices.Contains([]string{"application", "activity", "receiver", "service"}, el.Name.Local),
				a.Name.Local == "targetActivity" && el.Name.Local == "activity-alias":
				class = a.Value
			default:
				continue
			}
			if strings.HasPrefix(class, ".") {
				class = pkg + class
			}
			components++
			p := filepath.Join(classes, filepath.FromSlash(strings.ReplaceAll(class, ".", "/"))+".class")
			if !fileExists(p) {
				t.Errorf("manifest <%s> names %s, which the app's sources do not define", el.Name.Local, class)
			}
		}
	}
	if components == 0 {
		t.Fatal("the manifest names no component")
	}
	t.Logf("manifest: %d component classes and every resource it names exist", components)
}
