package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The JSON names of the built-in settings, in canonical order.
const (
	SettingCameraDisabled          = "cameraDisabled"
	SettingScreenCaptureDisabled   = "screenCaptureDisabled"
	SettingStatusBarDisabled       = "statusBarDisabled"
	SettingLockTaskPackages        = "lockTaskPackages"
	SettingUSBFileTransferDisabled = "usbFileTransferDisabled"
	SettingPasswordMinLength       = "passwordMinLength"
	SettingSSHPasswordAuthDisabled = "sshPasswordAuthDisabled"
	SettingAutoUpdatesEnabled      = "autoUpdatesEnabled"
	// The Linux host settings (capability version 6); docs/LINUX.md has
	// how each is enforced and read back per distribution.
	SettingPackages               = "packages"
	SettingServices               = "services"
	SettingFirewallEnabled        = "firewallEnabled"
	SettingSSHRootLoginDisabled   = "sshRootLoginDisabled"
	SettingPasswordQuality        = "passwordQuality"
	SettingMACEnforcing           = "macEnforcing"
	SettingAuditdRunning          = "auditdRunning"
	SettingDiskEncryptionRequired = "diskEncryptionRequired"
)

// Limits on setting values.
const (
	MaxPasswordMinLength = 64
	MaxLockTaskPackages  = 100
	MaxPackageName       = 256
)

// builtinSettings is the catalog: one entry per setting, in canonical
// order (the order of Diff, DevicePolicy.Monitor, explanations and the
// docs). To add a setting, add its entry here and its field to Settings
// (a test checks they agree), then each platform's enforcer.
var builtinSettings = []SettingDef{
	{
		Name: SettingCameraDisabled, Type: TypeBool,
		Description: "The camera is disabled. Always managed.",
		Platforms: map[string]string{
			PlatformAndroid: "`setCameraDisabled(admin, b)`; read back `getCameraDisabled`",
			PlatformLinux:   "kernel-module blacklist in `/etc/modprobe.d` (`uvcvideo`)",
		},
		Default: json.RawMessage("false"),
	},
	{
		Name: SettingScreenCaptureDisabled, Type: TypeBool,
		Description: "Screenshots and screen recording are disabled.",
		Platforms:   map[string]string{PlatformAndroid: "`setScreenCaptureDisabled(admin, b)`; read back `getScreenCaptureDisabled`"},
	},
	{
		Name: SettingStatusBarDisabled, Type: TypeBool,
		Description: "The status bar is disabled.",
		Platforms:   map[string]string{PlatformAndroid: "`setStatusBarDisabled(admin, b)` (device owner; `false` returned is a failure); read back `isStatusBarDisabled()` on 14+, before that the value last accepted (no getter)"},
	},
	{
		Name: SettingLockTaskPackages, Type: TypeStrings, MaxItems: MaxLockTaskPackages, MaxItemBytes: MaxPackageName,
		Description: "Packages allowed in lock-task (kiosk) mode, in order.",
		Platforms:   map[string]string{PlatformAndroid: "`setLockTaskPackages(admin, pkgs + the agent)`, the agent as persistent home, `startLockTask()` for the first package; `[]` leaves lock task (docs/ANDROID.md, kiosk mode); read back `getLockTaskPackages`"},
	},
	{
		Name: SettingUSBFileTransferDisabled, Type: TypeBool,
		Description: "USB file transfer is disabled.",
		Platforms:   map[string]string{PlatformAndroid: "`addUserRestriction` / `clearUserRestriction(admin, UserManager.DISALLOW_USB_FILE_TRANSFER)`; read back `UserManager.hasUserRestriction`"},
	},
	{
		Name: SettingPasswordMinLength, Type: TypeInt, Min: 0, Max: MaxPasswordMinLength,
		Description: "Minimum screen-lock password length.",
		Platforms:   map[string]string{PlatformAndroid: "Android 8–11: `setPasswordQuality(admin, NUMERIC)` + `setPasswordMinimumLength(admin, n)`; 12+ (API 31): `setRequiredPasswordComplexity`, the weakest that guarantees n (0 `NONE`, 1–4 `MEDIUM`, 5–6 `HIGH`; more than 6 fails), read back as the length it guarantees (0, 4 or 6)"},
	},
	{
		Name: SettingSSHPasswordAuthDisabled, Type: TypeBool,
		Description: "sshd refuses password authentication.",
		Platforms:   map[string]string{PlatformLinux: "sshd drop-in in `/etc/ssh/sshd_config.d` (`PasswordAuthentication no`)"},
	},
	{
		Name: SettingAutoUpdatesEnabled, Type: TypeBool,
		Description: "Unattended (automatic) updates are on.",
		Platforms: map[string]string{
			PlatformAndroid: "`setSystemUpdatePolicy(admin, SystemUpdatePolicy.createAutomaticInstallPolicy())`, or `null` to hand updates back to the user; read back `getSystemUpdatePolicy()`",
			PlatformLinux:   "apt periodic config in `/etc/apt/apt.conf.d` (`APT::Periodic::Unattended-Upgrade`)",
		},
	},
	{
		Name: SettingPackages, Type: TypeObject,
		Description: "Packages that must be installed (at least minVersion) or absent, through the native package manager.",
		Platforms:   map[string]string{PlatformLinux: "apt/dpkg, dnf/rpm, zypper, pacman or apk, from `/etc/os-release`; versions compared per format"},
		Schema: map[string]any{
			"type": "array", "maxItems": MaxLinuxPackages,
			"items": map[string]any{
				"type": "object", "required": []string{"name", "state"}, "additionalProperties": false,
				"properties": map[string]any{
					"name":       map[string]any{"type": "string", "pattern": linuxPackageName.String()},
					"state":      map[string]any{"type": "string", "enum": []string{string(PackagePresent), string(PackageAbsent)}},
					"minVersion": map[string]any{"type": "string", "pattern": linuxPackageVersion.String()},
					"version":    map[string]any{"type": "string", "description": "reports only: the installed version of a package below its minVersion"},
				},
			},
		},
		Parse: func(raw json.RawMessage) (json.RawMessage, error) {
			var pkgs []Package
			if err := strictJSON(raw, &pkgs); err != nil {
				return nil, fmt.Errorf("must be a list of {name, state, minVersion?}: %v", err)
			}
			if err := ValidatePackages(pkgs); err != nil {
				return nil, err
			}
			if pkgs == nil {
				pkgs = []Package{}
			}
			return json.Marshal(pkgs)
		},
	},
	{
		Name: SettingServices, Type: TypeObject,
		Description: "systemd units that must be enabled or not, running or not, masked or not.",
		Platforms:   map[string]string{PlatformLinux: "`systemctl` (mask, enable, start and their opposites), read back with `systemctl show`"},
		Schema: map[string]any{
			"type": "array", "maxItems": MaxLinuxServices,
			"items": map[string]any{
				"type": "object", "required": []string{"name"}, "additionalProperties": false,
				"properties": map[string]any{
					"name":    map[string]any{"type": "string", "pattern": systemdUnitName.String()},
					"enabled": map[string]any{"type": "boolean"},
					"running": map[string]any{"type": "boolean"},
					"masked":  map[string]any{"type": "boolean"},
				},
			},
		},
		Parse: func(raw json.RawMessage) (json.RawMessage, error) {
			var svcs []Service
			if err := strictJSON(raw, &svcs); err != nil {
				return nil, fmt.Errorf("must be a list of {name, enabled?, running?, masked?}: %v", err)
			}
			if err := ValidateServices(svcs); err != nil {
				return nil, err
			}
			if svcs == nil {
				svcs = []Service{}
			}
			return json.Marshal(svcs)
		},
	},
	{
		Name: SettingFirewallEnabled, Type: TypeBool,
		Description: "The host firewall is on, with its ruleset loaded.",
		Platforms:   map[string]string{PlatformLinux: "ufw, firewalld or nftables, whichever the host has"},
	},
	{
		Name: SettingSSHRootLoginDisabled, Type: TypeBool,
		Description: "sshd refuses root logins.",
		Platforms:   map[string]string{PlatformLinux: "sshd drop-in in `/etc/ssh/sshd_config.d` (`PermitRootLogin no`)"},
	},
	{
		Name: SettingPasswordQuality, Type: TypeObject,
		Description: "Minimum password length and character classes for new passwords.",
		Platforms:   map[string]string{PlatformLinux: "pam_pwquality drop-in in `/etc/security/pwquality.conf.d` (`minlen`, `minclass`)"},
		Schema: map[string]any{
			"type": "object", "required": []string{"minlen", "minclass"}, "additionalProperties": false,
			"properties": map[string]any{
				"minlen":   map[string]any{"type": "integer", "minimum": 6, "maximum": MaxPWQualityLen},
				"minclass": map[string]any{"type": "integer", "minimum": 0, "maximum": MaxPWQualityCls},
			},
		},
		Parse: func(raw json.RawMessage) (json.RawMessage, error) {
			var q struct {
				MinLen   *int `json:"minlen"`
				MinClass *int `json:"minclass"`
			}
			if err := strictJSON(raw, &q); err != nil || q.MinLen == nil || q.MinClass == nil {
				return nil, fmt.Errorf("must be {minlen, minclass}")
			}
			pq := PasswordQuality{MinLen: *q.MinLen, MinClass: *q.MinClass}
			if err := ValidatePasswordQuality(pq); err != nil {
				return nil, err
			}
			return json.Marshal(pq)
		},
	},
	{
		Name: SettingMACEnforcing, Type: TypeBool,
		Description: "Mandatory access control (AppArmor or SELinux) is enforcing.",
		Platforms:   map[string]string{PlatformLinux: "SELinux `setenforce` and `/etc/selinux/config`, or AppArmor's profiles loaded; what needs a reboot is only read back"},
	},
	{
		Name: SettingAuditdRunning, Type: TypeBool,
		Description: "The audit daemon runs.",
		Platforms:   map[string]string{PlatformLinux: "`systemctl enable --now auditd.service`"},
	},
	{
		Name: SettingDiskEncryptionRequired, Type: TypeBool,
		Description: "The root file system must be encrypted (monitor-only: observed, never done; false requires nothing).",
		Platforms:   map[string]string{PlatformLinux: "observes LUKS under the root file system (`/sys/dev/block`); never encrypts"},
		// A requirement: false requires nothing, so any observation
		// satisfies it; true needs the disk encrypted.
		Equal: func(want, got json.RawMessage) bool {
			return bytes.Equal(want, []byte("false")) || bytes.Equal(want, got)
		},
	},
}
