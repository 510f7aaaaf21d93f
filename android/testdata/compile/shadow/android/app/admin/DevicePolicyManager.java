package android.app.admin;

import android.content.ComponentName;
import android.content.IntentFilter;
import java.util.concurrent.Executor;

public class DevicePolicyManager {
    DevicePolicyManager() {}

    public static final String EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE = "android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE";
    public static final String EXTRA_PROVISIONING_MODE = "android.app.extra.PROVISIONING_MODE"; // API 29
    public static final int PROVISIONING_MODE_FULLY_MANAGED_DEVICE = 1; // API 29

    public static final int PERMISSION_GRANT_STATE_GRANTED = 1;
    public static final int WIPE_RESET_PROTECTION_DATA = 2;

    public static final int PASSWORD_QUALITY_UNSPECIFIED = 0;
    public static final int PASSWORD_QUALITY_NUMERIC = 131072;
    public static final int PASSWORD_COMPLEXITY_NONE = 0; // API 29
    public static final int PASSWORD_COMPLEXITY_MEDIUM = 196608; // API 29
    public static final int PASSWORD_COMPLEXITY_HIGH = 327680; // API 29

    public boolean isDeviceOwnerApp(String packageName) { throw new RuntimeException("shadow"); }

    public void setCameraDisabled(ComponentName admin, boolean disabled) { throw new RuntimeException("shadow"); }
    public boolean getCameraDisabled(ComponentName admin) { throw new RuntimeException("shadow"); }

    public void setScreenCaptureDisabled(ComponentName admin, boolean disabled) { throw new RuntimeException("shadow"); }
    public boolean getScreenCaptureDisabled(ComponentName admin) { throw new RuntimeException("shadow"); }

    public boolean setStatusBarDisabled(ComponentName admin, boolean disabled) { throw new RuntimeException("shadow"); }
    public boolean isStatusBarDisabled() { throw new RuntimeException("shadow"); } // API 34

    public void addUserRestriction(ComponentName admin, String key) { throw new RuntimeException("shadow"); }
    public void clearUserRestriction(ComponentName admin, String key) { throw new RuntimeException("shadow"); }

    public void setPasswordQuality(ComponentName admin, int quality) { throw new RuntimeException("shadow"); }
    public int getPasswordQuality(ComponentName admin) { throw new RuntimeException("shadow"); }
    public void setPasswordMinimumLength(ComponentName admin, int length) { throw new RuntimeException("shadow"); }
    public int getPasswordMinimumLength(ComponentName admin) { throw new RuntimeException("shadow"); }
    public void setRequiredPasswordComplexity(int passwordComplexity) { throw new RuntimeException("shadow"); } // API 31
    public int getRequiredPasswordComplexity() { throw new RuntimeException("shadow"); } // API 31

    public void setLockTaskPackages(ComponentName admin, String[] packages) throws SecurityException { throw new RuntimeException("shadow"); }
    public String[] getLockTaskPackages(ComponentName admin) { throw new RuntimeException("shadow"); } // API 26
    public boolean isLockTaskPermitted(String pkg) { throw new RuntimeException("shadow"); }
    public void addPersistentPreferredActivity(ComponentName admin, IntentFilter filter, ComponentName activity) { throw new RuntimeException("shadow"); }
    public void clearPackagePersistentPreferredActivities(ComponentName admin, String packageName) { throw new RuntimeException("shadow"); }

    public boolean setPermissionGrantState(ComponentName admin, String packageName, String permission, int grantState) { throw new RuntimeException("shadow"); }
    public String getWifiMacAddress(ComponentName admin) { throw new RuntimeException("shadow"); } // API 24

    // Remote commands (DpmExecutor).
    public void lockNow() { throw new RuntimeException("shadow"); }
    public void reboot(ComponentName admin) { throw new RuntimeException("shadow"); } // API 24
    public void wipeData(int flags) { throw new RuntimeException("shadow"); }
    public void wipeDevice(int flags) { throw new RuntimeException("shadow"); } // API 34
    public boolean setResetPasswordToken(ComponentName admin, byte[] token) { throw new RuntimeException("shadow"); } // API 26
    public boolean isResetPasswordTokenActive(ComponentName admin) { throw new RuntimeException("shadow"); } // API 26
    public boolean resetPasswordWithToken(ComponentName admin, String password, byte[] token, int flags) { throw new RuntimeException("shadow"); } // API 26
    public void clearApplicationUserData(ComponentName admin, String packageName, Executor executor, OnClearApplicationUserDataListener listener) { throw new RuntimeException("shadow"); } // API 28

    public interface OnClearApplicationUserDataListener { // API 28
        void onApplicationUserDataCleared(String packageName, boolean succeeded); // API 28
    }

    public void setSystemUpdatePolicy(ComponentName admin, SystemUpdatePolicy policy) { throw new RuntimeException("shadow"); }
    public SystemUpdatePolicy getSystemUpdatePolicy() { throw new RuntimeException("shadow"); }
}
