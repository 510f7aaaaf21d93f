package proto

import (
	"fmt"
	"regexp"
)

// PackageState is whether a package must be installed.
type PackageState string

// The package states.
const (
	PackagePresent PackageState = "present"
	PackageAbsent  PackageState = "absent"
)

// Package is one entry of the packages setting: a package of the host's
// native package manager (apt/dpkg, dnf/rpm, zypper, pacman, apk) that must
// be installed (at least MinVersion, compared in the manager's own version
// format) or must not be.
//
// In a report, the agent echoes each entry the policy names with the state
// it observes, and MinVersion only when the installed version satisfies it;
// an installed package below MinVersion carries its Version instead, so the
// entry differs from the desired one and says why.
type Package struct {
	Name       string       `json:"name"`
	State      PackageState `json:"state"`
	MinVersion string       `json:"minVersion,omitempty"`
	// Version is set only in reports: the installed version of a package
	// below its MinVersion.
	Version string `json:"version,omitempty"`
}

// Service is one entry of the services setting: a systemd unit and what
// must hold for it. A nil field is not managed. In a report, the agent
// echoes the fields the policy manages with the values it observes.
type Service struct {
	Name    string `json:"name"`
	Enabled *bool  `json:"enabled,omitempty"`
	Running *bool  `json:"running,omitempty"`
	Masked  *bool  `json:"masked,omitempty"`
}

// PasswordQuality is pam_pwquality's minimum length and minimum number of
// character classes (digits, upper case, lower case, others).
type PasswordQuality struct {
	MinLen   int `json:"minlen"`
	MinClass int `json:"minclass"`
}

// Limits on the Linux settings' values.
const (
	MaxLinuxPackages = 200
	MaxLinuxServices = 100
	MaxPWQualityLen  = 128
	MaxPWQualityCls  = 4
)

var (
	// linuxPackageName is what every supported manager accepts as a
	// name; never starting with "-", so a name is never an option.
	linuxPackageName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._@-]{0,127}$`)
	// linuxPackageVersion covers deb, rpm, pacman and apk versions.
	linuxPackageVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,127}$`)
	// systemdUnitName is a unit name, with or without its suffix.
	systemdUnitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,254}$`)
)

// ValidatePackages checks a packages setting: at most MaxLinuxPackages
// entries, each with a valid name named once, state present or absent, and
// a minVersion only for a present package; Version is report-only.
func ValidatePackages(pkgs []Package) error {
	if len(pkgs) > MaxLinuxPackages {
		return fmt.Errorf("more than %d packages", MaxLinuxPackages)
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		if !linuxPackageName.MatchString(p.Name) {
			return fmt.Errorf("package name %q: 1 to 128 letters, digits and + . _ @ -, not starting with a sign", p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("package %q is named twice", p.Name)
		}
		seen[p.Name] = true
		switch p.State {
		case PackagePresent, PackageAbsent:
		default:
			return fmt.Errorf("package %q: state must be %q or %q", p.Name, PackagePresent, PackageAbsent)
		}
		if p.MinVersion != "" {
			if p.State != PackagePresent {
				return fmt.Errorf("package %q: minVersion needs state %q", p.Name, PackagePresent)
			}
			if !linuxPackageVersion.MatchString(p.MinVersion) {
				return fmt.Errorf("package %q: minVersion %q is not a package version", p.Name, p.MinVersion)
			}
		}
		if p.Version != "" {
			return fmt.Errorf("package %q: version is reported by agents, not set", p.Name)
		}
	}
	return nil
}

// ValidateServices checks a services setting: at most MaxLinuxServices
// units, each named once with a valid unit name, managing at least one
// field, and never masked together with enabled or running.
func ValidateServices(svcs []Service) error {
	if len(svcs) > MaxLinuxServices {
		return fmt.Errorf("more than %d services", MaxLinuxServices)
	}
	seen := map[string]bool{}
	for _, s := range svcs {
		if !systemdUnitName.MatchString(s.Name) {
			return fmt.Errorf("service name %q is not a systemd unit name", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("service %q is named twice", s.Name)
		}
		seen[s.Name] = true
		if s.Enabled == nil && s.Running == nil && s.Masked == nil {
			return fmt.Errorf("service %q: set at least one of enabled, running, masked", s.Name)
		}
		if s.Masked != nil && *s.Masked && (s.Enabled != nil && *s.Enabled || s.Running != nil && *s.Running) {
			return fmt.Errorf("service %q: a masked unit can be neither enabled nor running", s.Name)
		}
	}
	return nil
}

// ValidatePasswordQuality checks minlen (6 to MaxPWQualityLen, as
// pam_pwquality refuses less than 6) and minclass (0 to 4).
func ValidatePasswordQuality(q PasswordQuality) error {
	if q.MinLen < 6 || q.MinLen > MaxPWQualityLen {
		return fmt.Errorf("minlen must be from 6 to %d", MaxPWQualityLen)
	}
	if q.MinClass < 0 || q.MinClass > MaxPWQualityCls {
		return fmt.Errorf("minclass must be from 0 to %d", MaxPWQualityCls)
	}
	return nil
}
