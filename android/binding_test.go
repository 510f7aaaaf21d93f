package doorbell

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// TestJavaBinding exercises the REAL gobind bindings on the host JVM: it runs
// gobind -lang=go,java on this package, builds the generated Go glue as a
// linux/amd64 c-shared libgojni.so (the JDK's JNI headers and Debian's
// android-liblog-dev stand in for the NDK), compiles the generated Java and
// testdata/harness/Harness.java with javac, and runs the harness against a
// real `doorbell serve` process. The harness implements Enforcer, Store and
// Logger in Java and checks convergence, a Go error thrown into Java and a
// Java exception arriving in Go as an error; then every setting, each edited
// by the operator in turn, reaching an in-memory DevicePolicyManager
// stand-in with the server saying COMPLIANT, and one refused setting
// reported ENFORCEMENT_FAILED alone while the others are applied; then a
// lock command run by a Java Executor (ACKNOWLEDGED on the server) and a
// wipe run through runAfterReport once the server holds ACKNOWLEDGED, a Java
// Collector's Android inventory read back from GET /devices/{id}/inventory,
// and a Java Notifier told about a guided setting.
//
// Missing tools fail the test: `make deps` installs them (default-jdk-headless,
// android-liblog-dev). `go test -short` skips it.
func TestJavaBinding(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the host-JVM binding test")
	}
	if runtime.GOOS != "linux" {
		t.Skipf("the host-JVM binding test builds a Linux shared library; GOOS is %s", runtime.GOOS)
	}
	start := time.Now()
	tools := findJavaTools(t)

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	goTool := goBinary(t)
	gen := gobindOutput(t)

	// The Go glue is a main package meant for GOOS=android: rename the
	// *_android files so they build on the host, and give it a module that
	// resolves this repository from the working tree.
	glue := filepath.Join(gen, "src", "gobind")
	renameAndroidFiles(t, glue)
	gomod := fmt.Sprintf("module doorbellbind\n\ngo 1.26\n\nrequire github.com/doorbell-mdm/doorbell v0.0.0\n\nreplace github.com/doorbell-mdm/doorbell => %s\n", root)
	writeFile(t, filepath.Join(glue, "go.mod"), gomod)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(glue, "go.sum"), string(sum))
	libDir := filepath.Join(work, "lib")
	env := []string{
		"CGO_ENABLED=1",
		"GOFLAGS=-mod=mod -buildvcs=false",
		// The desktop jni.h declares AttachCurrentThread with void**, the
		// NDK's with JNIEnv**; the glue is written for the NDK and builds
		// with -Werror.
		"CGO_CFLAGS=-D__GOBIND_ANDROID__ -Wno-incompatible-pointer-types -I" + tools.jniInclude + " -I" + filepath.Join(tools.jniInclude, "linux") + " -I" + tools.logInclude,
		"CGO_LDFLAGS=-L" + tools.logLib + " -Wl,-rpath," + tools.logLib,
	}
	run(t, glue, env, goTool, "build", "-buildmode=c-shared", "-o", filepath.Join(libDir, "libgojni.so"), ".")
	t.Logf("gobind and libgojni.so built in %v", time.Since(start).Round(time.Millisecond))

	// The generated Java, a stub android.content.Context (go.Seq imports
	// it; kept out of the generated tree, which the compile check uses
	// with the real android.jar) and the harness.
	javaSrc := filepath.Join(gen, "java")
	contextStub := filepath.Join(work, "hoststub", "android", "content", "Context.java")
	writeFile(t, contextStub,
		"package android.content;\n\n/** Stub for the host JVM: go.Seq only names the type. */\npublic class Context {}\n")
	harness, err := filepath.Abs(filepath.Join("testdata", "harness", "Harness.java"))
	if err != nil {
		t.Fatal(err)
	}
	sources := []string{harness, contextStub}
	filepath.WalkDir(javaSrc, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".java") {
			sources = append(sources, p)
		}
		return err
	})
	classes := filepath.Join(work, "classes")
	run(t, work, nil, tools.javac, append([]string{"-nowarn", "-d", classes}, sources...)...)

	// A real server process.
	bin := filepath.Join(work, "doorbell")
	run(t, root, nil, goTool, "build", "-o", bin, "./cmd/doorbell")
	srv := startDoorbellServe(t, bin, filepath.Join(work, "data"))

	t.Logf("running the Java harness against %s", srv.url)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.java, "-Djava.library.path="+libDir, "-cp", classes,
		"Harness", srv.url, srv.enroll, srv.admin, srv.pin, filepath.Join(work, "data", "tls", "ca.pem"))
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log("java: " + line)
	}
	if err != nil {
		t.Fatalf("the Java harness failed: %v", err)
	}
	// Harness.java makes 17 checks of the camera-only enforcer, one of the
	// DPM stand-in's enrollment, two per setting the policy knows and four
	// of a setting the enforcer refuses, and nine of the Executor,
	// Collector and Notifier; every one must pass.
	harnessChecks := 17 + 1 + 2*len(proto.SettingNames) + 4 + 9
	passes, ok := 0, false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "PASS "):
			passes++
		case line == "HARNESS OK":
			ok = true
		}
	}
	if !ok || passes != harnessChecks {
		t.Fatalf("the Java harness passed %d of %d checks (HARNESS OK printed: %v)", passes, harnessChecks, ok)
	}
	t.Logf("host-JVM binding test: %d checks passed, %v in all", passes, time.Since(start).Round(time.Millisecond))
}

var (
	bindOnce sync.Once
	bindDir  string
	bindErr  error
)

// TestMain removes what gobindOutput generated.
func TestMain(m *testing.M) {
	code := m.Run()
	if bindDir != "" {
		os.RemoveAll(bindDir)
	}
	os.Exit(code)
}

// gobindOutput builds gobind from the x/mobile version go.mod pins and runs
// `gobind -lang=go,java -javapkg=org.doorbellmdm` on this package, once per
// test binary (the binding test and the compile check share it). It returns
// gobind's -outdir: the Go glue in src/gobind, the Java in java/.
func gobindOutput(t *testing.T) string {
	t.Helper()
	bindOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			bindErr = err
			return
		}
		if bindDir, bindErr = os.MkdirTemp("", "doorbell-gobind-"); bindErr != nil {
			return
		}
		gobind := filepath.Join(bindDir, "gobind")
		for _, args := range [][]string{
			{goBinary(t), "build", "-o", gobind, "golang.org/x/mobile/cmd/gobind"},
			{gobind, "-lang=go,java", "-javapkg=org.doorbellmdm", "-outdir", filepath.Join(bindDir, "gen"), "github.com/doorbell-mdm/doorbell/android"},
		} {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				bindErr = fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if bindErr != nil {
		t.Fatal(bindErr)
	}
	return filepath.Join(bindDir, "gen")
}

// generatedJava returns the directory of the gobind-generated Java.
func generatedJava(t *testing.T) string { return filepath.Join(gobindOutput(t), "java") }

// javaTools are the paths the binding test needs.
type javaTools struct {
	javac, java        string
	jniInclude         string // holds jni.h
	logInclude, logLib string // android/log.h, liblog.so
}

func findJavaTools(t *testing.T) javaTools {
	t.Helper()
	var missing []string
	var tools javaTools
	var err error
	if tools.javac, err = exec.LookPath("javac"); err != nil {
		missing = append(missing, "javac (default-jdk-headless)")
	}
	if tools.java, err = exec.LookPath("java"); err != nil {
		missing = append(missing, "java (default-jdk-headless)")
	}
	if tools.javac != "" {
		// javac lives in $JAVA_HOME/bin; jni.h in $JAVA_HOME/include.
		if real, err := filepath.EvalSymlinks(tools.javac); err == nil {
			inc := filepath.Join(filepath.Dir(filepath.Dir(real)), "include")
			if fileExists(filepath.Join(inc, "jni.h")) {
				tools.jniInclude = inc
			}
		}
	}
	if tools.jniInclude == "" {
		missing = append(missing, "jni.h next to javac (default-jdk-headless)")
	}
	if fileExists("/usr/include/android/android/log.h") {
		tools.logInclude = "/usr/include/android"
	} else {
		missing = append(missing, "/usr/include/android/android/log.h (android-liblog-dev)")
	}
	libs, _ := filepath.Glob("/usr/lib/*/android/liblog.so")
	if len(libs) > 0 {
		tools.logLib = filepath.Dir(libs[0])
	} else {
		missing = append(missing, "/usr/lib/*/android/liblog.so (android-liblog-dev)")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		if _, err := exec.LookPath("cc"); err != nil {
			missing = append(missing, "a C compiler for cgo (gcc)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the host-JVM binding test needs: %s. `make deps` installs them as root "+
			"(apt-get install default-jdk-headless android-liblog-dev); `go test -short` skips this test",
			strings.Join(missing, ", "))
	}
	return tools
}

func goBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if fileExists(p) {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go tool is not found")
	}
	return p
}

// renameAndroidFiles gives the generated *_android.go and *_android.c files
// a name without the GOOS suffix, so the host build includes them. Headers
// keep their names: the C files include them by name.
func renameAndroidFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	renamed := 0
	for _, e := range entries {
		name := e.Name()
		for _, ext := range []string{".go", ".c"} {
			if base, ok := strings.CutSuffix(name, "_android"+ext); ok {
				if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, base+"_jni"+ext)); err != nil {
					t.Fatal(err)
				}
				renamed++
			}
		}
	}
	if renamed == 0 {
		t.Fatalf("gobind wrote no *_android.go or *_android.c files in %s: its layout changed", dir)
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// serveProc is a running `doorbell serve` process.
type serveProc struct {
	url, admin, enroll, pin string
}

// startDoorbellServe starts the doorbell binary on loopback ports and waits
// for its "serving" log line, which carries the bound addresses.
func startDoorbellServe(t *testing.T, bin, dataDir string) serveProc {
	t.Helper()
	s := serveProc{admin: "binding-admin-token", enroll: "binding-enroll-token"}
	cmd := exec.Command(bin, "serve", "--data", dataDir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0",
		"--admin-token", s.admin, "--enroll-token", s.enroll, "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		logs bytes.Buffer
	)
	serving := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			var l struct{ Msg, HTTP, Pin string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "serving" {
				s.pin = l.Pin
				select {
				case serving <- l.HTTP:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-done
		if err := cmd.Wait(); err != nil {
			t.Errorf("doorbell serve did not stop cleanly: %v", err)
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("doorbell serve logs:\n%s", logs.String())
			mu.Unlock()
		}
	})
	select {
	case addr := <-serving:
		s.url = "https://" + addr
	case <-done:
		t.Fatal("doorbell serve exited before serving")
	case <-time.After(time.Minute):
		t.Fatal("doorbell serve did not log \"serving\" within a minute")
	}
	return s
}
