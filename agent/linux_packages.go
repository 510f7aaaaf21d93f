package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/doorbell-mdm/doorbell/internal/pkgver"
	"github.com/doorbell-mdm/doorbell/proto"
)

// pkgManager is a distribution's native package manager, driven through
// the enforcer's Runner.
type pkgManager interface {
	// tool is the program whose presence under the root means the
	// manager is there.
	tool() string
	format() pkgver.Format
	// installed returns the installed version of each of names that is
	// installed; a name missing from the map is not installed.
	installed(ctx context.Context, r Runner, names []string) (map[string]string, error)
	install(ctx context.Context, r Runner, names []string) error
	upgrade(ctx context.Context, r Runner, names []string) error
	remove(ctx context.Context, r Runner, names []string) error
}

// managerFor returns the package manager of a distribution family.
func managerFor(f Family) pkgManager {
	switch f {
	case FamilyDebian:
		return aptManager{}
	case FamilyRHEL:
		return rpmManager{frontend: "dnf"}
	case FamilySUSE:
		return rpmManager{frontend: "zypper"}
	case FamilyArch:
		return pacmanManager{}
	case FamilyAlpine:
		return apkManager{}
	}
	return nil
}

// aptManager is apt-get over dpkg (Debian, Ubuntu).
type aptManager struct{}

func (aptManager) tool() string          { return "apt-get" }
func (aptManager) format() pkgver.Format { return pkgver.Deb }

var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive"}

func (aptManager) installed(ctx context.Context, r Runner, names []string) (map[string]string, error) {
	// dpkg-query exits 1 when a name is unknown to dpkg, still printing
	// the known ones; "no packages found" on stderr is that case.
	out, err := r.Run(ctx, Command{Name: "dpkg-query", Args: append([]string{"-W", "-f=${Package}\t${db:Status-Abbrev}\t${Version}\n", "--"}, names...)})
	if err != nil && ExitCode(err) != 1 {
		return nil, err
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		// Status-Abbrev is desired, status, error: "ii " is installed;
		// "rc " (removed, config files left) and "un " are not.
		if st := strings.TrimSpace(f[1]); len(st) >= 2 && st[1] == 'i' {
			got[f[0]] = f[2]
		}
	}
	return got, nil
}

func (m aptManager) install(ctx context.Context, r Runner, names []string) error {
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, names...)
	_, err := r.Run(ctx, Command{Name: "apt-get", Args: args, Env: aptEnv})
	var re *RunError
	if errors.As(err, &re) && strings.Contains(re.Stderr, "Unable to locate package") {
		// A fresh host may have no package lists yet: fetch them once
		// and try again.
		if _, uerr := r.Run(ctx, Command{Name: "apt-get", Args: []string{"update", "-q"}, Env: aptEnv}); uerr != nil {
			return fmt.Errorf("%w (and updating the package lists: %v)", err, uerr)
		}
		_, err = r.Run(ctx, Command{Name: "apt-get", Args: args, Env: aptEnv})
	}
	return err
}

func (aptManager) upgrade(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "apt-get", Args: append([]string{"install", "-y", "-q", "--only-upgrade"}, names...), Env: aptEnv})
	return err
}

func (aptManager) remove(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "apt-get", Args: append([]string{"remove", "-y", "-q"}, names...), Env: aptEnv})
	return err
}

// rpmManager is rpm with dnf (Fedora, RHEL) or zypper (openSUSE) in front.
type rpmManager struct{ frontend string }

func (m rpmManager) tool() string        { return m.frontend }
func (rpmManager) format() pkgver.Format { return pkgver.RPM }

func (rpmManager) installed(ctx context.Context, r Runner, names []string) (map[string]string, error) {
	// rpm -q exits with the number of names not installed, printing
	// "package x is not installed" for each on stdout.
	out, err := r.Run(ctx, Command{Name: "rpm", Args: append([]string{"-q", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n", "--"}, names...)})
	if err != nil && ExitCode(err) < 1 {
		return nil, err
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		name, ver, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		got[name] = strings.TrimPrefix(ver, "0:")
	}
	return got, nil
}

func (m rpmManager) cmd(verb string, names []string) Command {
	if m.frontend == "zypper" {
		return Command{Name: "zypper", Args: append([]string{"--non-interactive", verb}, names...)}
	}
	return Command{Name: "dnf", Args: append([]string{verb, "-y"}, names...)}
}

func (m rpmManager) install(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, m.cmd("install", names))
	return err
}

func (m rpmManager) upgrade(ctx context.Context, r Runner, names []string) error {
	verb := "upgrade"
	if m.frontend == "zypper" {
		verb = "update"
	}
	_, err := r.Run(ctx, m.cmd(verb, names))
	return err
}

func (m rpmManager) remove(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, m.cmd("remove", names))
	return err
}

// pacmanManager is Arch's pacman.
type pacmanManager struct{}

func (pacmanManager) tool() string          { return "pacman" }
func (pacmanManager) format() pkgver.Format { return pkgver.Pacman }

func (pacmanManager) installed(ctx context.Context, r Runner, names []string) (map[string]string, error) {
	// pacman -Q exits 1 when a name is not installed, listing the others.
	out, err := r.Run(ctx, Command{Name: "pacman", Args: append([]string{"-Q", "--"}, names...)})
	if err != nil && ExitCode(err) != 1 {
		return nil, err
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	return got, nil
}

func (pacmanManager) install(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "pacman", Args: append([]string{"-S", "--noconfirm", "--needed", "--"}, names...)})
	return err
}

func (pacmanManager) upgrade(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "pacman", Args: append([]string{"-Sy", "--noconfirm", "--"}, names...)})
	return err
}

func (pacmanManager) remove(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "pacman", Args: append([]string{"-R", "--noconfirm", "--"}, names...)})
	return err
}

// apkManager is Alpine's apk.
type apkManager struct{}

func (apkManager) tool() string          { return "apk" }
func (apkManager) format() pkgver.Format { return pkgver.APK }

func (apkManager) installed(ctx context.Context, r Runner, names []string) (map[string]string, error) {
	// apk info -v lists every installed package as name-version-rN.
	out, err := r.Run(ctx, Command{Name: "apk", Args: []string{"info", "-v"}})
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	got := map[string]string{}
	for _, line := range strings.Fields(string(out)) {
		if name, ver, ok := splitAPK(line); ok && want[name] {
			got[name] = ver
		}
	}
	return got, nil
}

// splitAPK splits "busybox-1.36.1-r5" into name and version: the version is
// the last two dash-separated parts.
func splitAPK(s string) (name, version string, ok bool) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return "", "", false
	}
	j := strings.LastIndexByte(s[:i], '-')
	if j <= 0 {
		return "", "", false
	}
	return s[:j], s[j+1:], true
}

func (apkManager) install(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "apk", Args: append([]string{"add", "--"}, names...)})
	return err
}

func (apkManager) upgrade(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "apk", Args: append([]string{"add", "--upgrade", "--"}, names...)})
	return err
}

func (apkManager) remove(ctx context.Context, r Runner, names []string) error {
	_, err := r.Run(ctx, Command{Name: "apk", Args: append([]string{"del", "--"}, names...)})
	return err
}

// enforcePackages installs, upgrades and removes what want says, with one
// call of the manager per kind of change, then reads back and fails for
// every package that is still not as wanted.
func (e *LinuxEnforcer) enforcePackages(ctx context.Context, h linuxHost, want []proto.Package) error {
	if h.pkg == nil {
		return errors.New(h.pkgWhy)
	}
	if len(want) == 0 {
		return nil
	}
	names := packageNames(want)
	have, err := h.pkg.installed(ctx, e.run, names)
	if err != nil {
		return fmt.Errorf("listing installed packages: %w", err)
	}
	var install, upgrade, remove []string
	for _, p := range want {
		v, ok := have[p.Name]
		switch {
		case p.State == proto.PackageAbsent && ok:
			remove = append(remove, p.Name)
		case p.State == proto.PackagePresent && !ok:
			install = append(install, p.Name)
		case p.State == proto.PackagePresent && p.MinVersion != "":
			if at, err := pkgver.AtLeast(h.pkg.format(), v, p.MinVersion); err != nil || !at {
				upgrade = append(upgrade, p.Name)
			}
		}
	}
	var errs []error
	for _, step := range []struct {
		what  string
		names []string
		do    func(context.Context, Runner, []string) error
	}{{"removing", remove, h.pkg.remove}, {"installing", install, h.pkg.install}, {"upgrading", upgrade, h.pkg.upgrade}} {
		if len(step.names) == 0 {
			continue
		}
		if err := step.do(ctx, e.run, step.names); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", step.what, strings.Join(step.names, ", "), err))
		}
	}
	got, err := e.observePackages(ctx, h, want)
	if err != nil {
		return err
	}
	var wrong []string
	for i, p := range want {
		g := got[i]
		switch {
		case g.State != p.State:
			wrong = append(wrong, fmt.Sprintf("%s is %s", p.Name, g.State))
		case g.Version != "":
			wrong = append(wrong, fmt.Sprintf("%s %s is below %s", p.Name, g.Version, p.MinVersion))
		}
	}
	if len(wrong) > 0 {
		errs = append([]error{fmt.Errorf("not in effect: %s", strings.Join(wrong, "; "))}, errs...)
	}
	return errors.Join(errs...)
}

// observePackages reads back each package of scope, in order: its state,
// its minVersion when the installed version satisfies it, its installed
// version when it does not.
func (e *LinuxEnforcer) observePackages(ctx context.Context, h linuxHost, scope []proto.Package) ([]proto.Package, error) {
	if h.pkg == nil {
		return nil, errors.New(h.pkgWhy)
	}
	out := make([]proto.Package, 0, len(scope))
	if len(scope) == 0 {
		return out, nil
	}
	have, err := h.pkg.installed(ctx, e.run, packageNames(scope))
	if err != nil {
		return nil, fmt.Errorf("listing installed packages: %w", err)
	}
	for _, p := range scope {
		o := proto.Package{Name: p.Name, State: proto.PackageAbsent}
		if v, ok := have[p.Name]; ok {
			o.State = proto.PackagePresent
			if p.MinVersion != "" {
				if at, err := pkgver.AtLeast(h.pkg.format(), v, p.MinVersion); err == nil && at {
					o.MinVersion = p.MinVersion
				} else {
					o.Version = v
				}
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// packageNames returns the names of pkgs, sorted.
func packageNames(pkgs []proto.Package) []string {
	names := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}
