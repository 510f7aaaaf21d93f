package proto

import "encoding/json"

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
			PlatformAndroid: "`setCameraDisabled(admin, b)`",
			PlatformLinux:   "kernel-module blacklist in `/etc/modprobe.d` (`uvcvideo`)",
		},
		Default: json.RawMessage("false"),
	},
	{
		Name: SettingScreenCaptureDisabled, Type: TypeBool,
		Description: "Screenshots and screen recording are disabled.",
		Platforms:   map[string]string{PlatformAndroid: "`setScreenCaptureDisabled(admin, b)`"},
	},
	{
		Name: SettingStatusBarDisabled, Type: TypeBool,
		Description: "The status bar is disabled.",
		Platforms:   map[string]string{PlatformAndroid: "`setStatusBarDisabled(admin, b)` (device owner)"},
	},
	{
		Name: SettingLockTaskPackages, Type: TypeStrings, MaxItems: MaxLockTaskPackages, MaxItemBytes: MaxPackageName,
		Description: "Packages allowed in lock-task (kiosk) mode, in order.",
		Platforms:   map[string]string{PlatformAndroid: "`setLockTaskPackages(admin, pkgs)` (kiosk allowlist; device owner)"},
	},
	{
		Name: SettingUSBFileTransferDisabled, Type: TypeBool,
		Description: "USB file transfer is disabled.",
		Platforms:   map[string]string{PlatformAndroid: "`addUserRestriction` / `clearUserRestriction(admin, UserManager.DISALLOW_USB_FILE_TRANSFER)`"},
	},
	{
		Name: SettingPasswordMinLength, Type: TypeInt, Min: 0, Max: MaxPasswordMinLength,
		Description: "Minimum screen-lock password length.",
		Platforms:   map[string]string{PlatformAndroid: "`setPasswordMinimumLength(admin, n)` (API < 31; on 31+ the nearest `setRequiredPasswordComplexity`)"},
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
			PlatformAndroid: "`setSystemUpdatePolicy(admin, SystemUpdatePolicy.createAutomaticInstallPolicy())`, or `null` to hand updates back to the user",
			PlatformLinux:   "apt periodic config in `/etc/apt/apt.conf.d` (`APT::Periodic::Unattended-Upgrade`)",
		},
	},
}
