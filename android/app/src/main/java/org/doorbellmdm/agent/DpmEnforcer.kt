package org.doorbellmdm.agent

import android.app.admin.DevicePolicyManager
import android.app.admin.SystemUpdatePolicy
import android.content.ComponentName
import android.content.Context
import android.os.Build
import android.os.UserManager
import org.doorbellmdm.doorbell.Enforcer
import org.json.JSONArray

/**
 * Enforces the policy through DevicePolicyManager as the device owner, one
 * setting at a time, each named by the policy's own JSON field name with its
 * value as JSON (the Go agent walks the settings; see docs/ANDROID.md). An
 * exception fails that one setting: the agent reports it ENFORCEMENT_FAILED
 * with the exception's message and applies the others.
 *
 * read() reports what the device has, read back from DevicePolicyManager /
 * UserManager, never the value last asked for. The one exception is the
 * status bar before Android 14, which has no getter: there the value is the
 * one setStatusBarDisabled last accepted (it returns false when it refuses).
 */
class DpmEnforcer(private val context: Context) : Enforcer {
    private val dpm = context.getSystemService(DevicePolicyManager::class.java)
    private val users = context.getSystemService(UserManager::class.java)
    private val admin: ComponentName = AdminReceiver.component(context)
    private val prefs = context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)

    override fun supports(setting: String): Boolean = setting in SUPPORTED

    override fun apply(setting: String, valueJSON: String) {
        check(dpm.isDeviceOwnerApp(context.packageName)) {
            "not the device owner: adb shell dpm set-device-owner ${context.packageName}/.AdminReceiver"
        }
        when (setting) {
            CAMERA -> dpm.setCameraDisabled(admin, bool(setting, valueJSON))
            SCREEN_CAPTURE -> dpm.setScreenCaptureDisabled(admin, bool(setting, valueJSON))
            STATUS_BAR -> {
                val disabled = bool(setting, valueJSON)
                check(dpm.setStatusBarDisabled(admin, disabled)) {
                    "setStatusBarDisabled($disabled) refused (a secure lock screen is set)"
                }
                prefs.edit().putBoolean(KEY_STATUS_BAR, disabled).commit()
            }
            USB_FILE_TRANSFER ->
                if (bool(setting, valueJSON)) {
                    dpm.addUserRestriction(admin, UserManager.DISALLOW_USB_FILE_TRANSFER)
                } else {
                    dpm.clearUserRestriction(admin, UserManager.DISALLOW_USB_FILE_TRANSFER)
                }
            PASSWORD_MIN_LENGTH -> Passwords.apply(dpm, admin, int(setting, valueJSON))
            LOCK_TASK_PACKAGES -> Kiosk.apply(context, dpm, admin, list(setting, valueJSON))
            AUTO_UPDATES -> dpm.setSystemUpdatePolicy(
                admin,
                if (bool(setting, valueJSON)) SystemUpdatePolicy.createAutomaticInstallPolicy() else null,
            )
            else -> throw IllegalArgumentException("setting $setting is not supported on Android")
        }
    }

    /**
     * A getter that needs the device owner (lock task, password complexity,
     * the status bar on 14+) throws SecurityException on a device where the
     * app is not the device owner yet: the setting is then not observed ("")
     * rather than failing every sync; a managed one shows as not matching.
     */
    override fun read(setting: String): String =
        try {
            readOwned(setting)
        } catch (e: SecurityException) {
            ""
        }

    private fun readOwned(setting: String): String =
        when (setting) {
            CAMERA -> dpm.getCameraDisabled(admin).toString()
            SCREEN_CAPTURE -> dpm.getScreenCaptureDisabled(admin).toString()
            STATUS_BAR ->
                if (Build.VERSION.SDK_INT >= 34) {
                    dpm.isStatusBarDisabled().toString()
                } else {
                    prefs.getBoolean(KEY_STATUS_BAR, false).toString()
                }
            USB_FILE_TRANSFER -> users.hasUserRestriction(UserManager.DISALLOW_USB_FILE_TRANSFER).toString()
            PASSWORD_MIN_LENGTH -> Passwords.read(dpm, admin).toString()
            LOCK_TASK_PACKAGES -> JSONArray(Kiosk.packages(context, dpm, admin)).toString()
            AUTO_UPDATES ->
                (dpm.getSystemUpdatePolicy()?.getPolicyType() == SystemUpdatePolicy.TYPE_INSTALL_AUTOMATIC).toString()
            else -> ""
        }

    companion object {
        const val CAMERA = "cameraDisabled"
        const val SCREEN_CAPTURE = "screenCaptureDisabled"
        const val STATUS_BAR = "statusBarDisabled"
        const val USB_FILE_TRANSFER = "usbFileTransferDisabled"
        const val PASSWORD_MIN_LENGTH = "passwordMinLength"
        const val LOCK_TASK_PACKAGES = "lockTaskPackages"
        const val AUTO_UPDATES = "autoUpdatesEnabled"

        /** The settings this app enforces; the others are reported UNSUPPORTED. */
        val SUPPORTED = setOf(
            CAMERA, SCREEN_CAPTURE, STATUS_BAR, USB_FILE_TRANSFER, PASSWORD_MIN_LENGTH,
            LOCK_TASK_PACKAGES, AUTO_UPDATES,
        )

        private const val PREFS = "doorbell-enforcer"
        private const val KEY_STATUS_BAR = "statusBarDisabled"

        private fun bool(setting: String, json: String): Boolean =
            when (json.trim()) {
                "true" -> true
                "false" -> false
                else -> throw IllegalArgumentException("$setting: $json is not true or false")
            }

        private fun int(setting: String, json: String): Int =
            json.trim().toIntOrNull() ?: throw IllegalArgumentException("$setting: $json is not a whole number")

        private fun list(setting: String, json: String): List<String> {
            val a = try {
                JSONArray(json)
            } catch (e: Exception) {
                throw IllegalArgumentException("$setting: $json is not a list of package names")
            }
            return List(a.length()) { a.getString(it) }
        }
    }
}

/**
 * passwordMinLength, with the API each Android version has:
 *
 * - before Android 12 (API < 31): setPasswordQuality(NUMERIC, or UNSPECIFIED
 *   for 0) and setPasswordMinimumLength(n); read back with
 *   getPasswordMinimumLength (the minimum only counts with a quality of
 *   NUMERIC or stronger, so a weaker quality reads as 0);
 * - from Android 12 (API 31): setPasswordMinimumLength is deprecated and no
 *   longer applies to a device owner; setRequiredPasswordComplexity with the
 *   weakest complexity that guarantees n: NONE for 0, MEDIUM (PIN or password
 *   of 4 or more) for 1–4, HIGH (PIN of 8, password of 6 or more) for 5–6.
 *   Read back as the length the complexity guarantees (NONE and LOW 0,
 *   MEDIUM 4, HIGH 6), so 1–3 and 5 read as the stricter 4 and 6, and more
 *   than 6 cannot be required: HIGH is set and apply() throws.
 */
object Passwords {
    /** The minimum length each complexity guarantees (API 31+). */
    fun guaranteed(complexity: Int): Int =
        when (complexity) {
            DevicePolicyManager.PASSWORD_COMPLEXITY_HIGH -> 6
            DevicePolicyManager.PASSWORD_COMPLEXITY_MEDIUM -> 4
            else -> 0
        }

    /** The weakest complexity that guarantees a minimum of n (API 31+). */
    fun complexityFor(n: Int): Int =
        when {
            n <= 0 -> DevicePolicyManager.PASSWORD_COMPLEXITY_NONE
            n <= 4 -> DevicePolicyManager.PASSWORD_COMPLEXITY_MEDIUM
            else -> DevicePolicyManager.PASSWORD_COMPLEXITY_HIGH
        }

    fun apply(dpm: DevicePolicyManager, admin: ComponentName, n: Int) {
        require(n in 0..64) { "passwordMinLength $n is out of range" }
        if (Build.VERSION.SDK_INT >= 31) {
            val c = complexityFor(n)
            dpm.setRequiredPasswordComplexity(c)
            check(guaranteed(c) >= n) {
                "Android 12+ can require at most ${guaranteed(c)} characters (complexity HIGH); $n asked"
            }
        } else {
            dpm.setPasswordQuality(
                admin,
                if (n > 0) DevicePolicyManager.PASSWORD_QUALITY_NUMERIC else DevicePolicyManager.PASSWORD_QUALITY_UNSPECIFIED,
            )
            dpm.setPasswordMinimumLength(admin, n)
        }
    }

    fun read(dpm: DevicePolicyManager, admin: ComponentName): Int =
        if (Build.VERSION.SDK_INT >= 31) {
            guaranteed(dpm.getRequiredPasswordComplexity())
        } else if (dpm.getPasswordQuality(admin) < DevicePolicyManager.PASSWORD_QUALITY_NUMERIC) {
            0
        } else {
            dpm.getPasswordMinimumLength(admin)
        }
}
