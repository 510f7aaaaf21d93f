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
}
