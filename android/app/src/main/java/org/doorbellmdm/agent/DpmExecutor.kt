package org.doorbellmdm.agent

import android.app.admin.DevicePolicyManager
import android.content.ComponentName
import android.content.Context
import android.os.Build
import android.util.Base64
import java.security.SecureRandom
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import org.doorbellmdm.doorbell.Executor
import org.json.JSONObject

/**
 * Carries out remote commands through DevicePolicyManager as the device
 * owner: DpmEnforcer's sibling for commands (docs/COMMANDS.md,
 * docs/ANDROID.md). The Go agent records each command in the app's Store
 * before calling execute(), so none runs twice, and reports what execute()
 * returns: {"state": "ACKNOWLEDGED" | "ERROR" | "NOT_NOW", "errorCode"?,
 * "message"?}. An exception is reported as ERROR "failed" with its message.
 *
 * - lock: lockNow().
 * - reboot: reboot(admin) (Android 7+). It does not return: the agent,
 *   restarted with the device, finds the command started in its journal
 *   and reports it ACKNOWLEDGED ("the device restarted").
 * - wipe: answered ACKNOWLEDGED with runAfterReport, so the operator sees
 *   the answer; runAfterReport() then calls wipeDevice (Android 14+) or
 *   wipeData (before), with WIPE_RESET_PROTECTION_DATA unless the
 *   keepFactoryResetProtection param is "true".
 * - reset_password: resetPasswordWithToken with the token this app set at
 *   start (ResetPasswordToken). NOT_NOW while the token is not active yet
 *   (a device with a lock screen activates it at the user's next unlock).
 *   The password is never logged nor kept.
 * - clear_app_data: clearApplicationUserData (Android 9+), waiting for its
 *   answer.
 * - enter_kiosk / exit_kiosk: Kiosk.resume / Kiosk.suspend (lock task).
 */
class DpmExecutor(private val context: Context) : Executor {
    private val dpm = context.getSystemService(DevicePolicyManager::class.java)
    private val admin: ComponentName = AdminReceiver.component(context)

    override fun supports(commandType: String): Boolean = commandType in SUPPORTED

    override fun execute(commandType: String, paramsJSON: String): String {
        if (!dpm.isDeviceOwnerApp(context.packageName)) {
            return error(FAILED, "not the device owner: adb shell dpm set-device-owner ${context.packageName}/.AdminReceiver")
        }
        val params = JSONObject(paramsJSON)
        return when (commandType) {
            LOCK -> {
                dpm.lockNow()
                ack("screen locked")
            }
            REBOOT -> {
                dpm.reboot(admin) // throws IllegalStateException during a call
                ack("rebooting")
            }
            WIPE -> ack("wiping: the device erases itself now", runAfterReport = true)
            RESET_PASSWORD -> resetPassword(params.optString("password"))
            CLEAR_APP_DATA -> clearAppData(params.optString("package"))
            ENTER_KIOSK ->
                if (Kiosk.resume(context, dpm, admin)) {
                    ack("lock task started")
                } else {
                    error(FAILED, "the policy sets no lockTaskPackages: nothing to lock the device to")
                }
            EXIT_KIOSK -> {
                Kiosk.suspend(context, dpm, admin)
                ack("lock task left until enter_kiosk")
            }
            else -> error(UNSUPPORTED, "this device does not support \"$commandType\"")
        }
    }

    override fun runAfterReport(commandType: String, paramsJSON: String) {
        if (commandType != WIPE) return
        val keepFrp = JSONObject(paramsJSON).optString("keepFactoryResetProtection") == "true"
        val flags = if (keepFrp) 0 else DevicePolicyManager.WIPE_RESET_PROTECTION_DATA
        if (Build.VERSION.SDK_INT >= 34) {
            dpm.wipeDevice(flags)
        } else {
            dpm.wipeData(flags)
        }
    }

    private fun resetPassword(password: String): String {
        if (password.isEmpty()) return error(BAD_PARAMS, "no password")
        val token = ResetPasswordToken.ensure(context, dpm, admin)
        if (!dpm.isResetPasswordTokenActive(admin)) {
            return notNow("the reset-password token is not active yet: the user must unlock the device once")
        }
        return if (dpm.resetPasswordWithToken(admin, password, token, 0)) {
            ack("password changed")
        } else {
            error(BAD_PARAMS, "the password does not meet the device's password requirements")
        }
    }

    private fun clearAppData(pkg: String): String {
        if (Build.VERSION.SDK_INT < 28) return error(UNSUPPORTED, "clear_app_data needs Android 9 or later")
        if (pkg == context.packageName) return error(BAD_PARAMS, "the management app cannot clear its own data")
        val done = CountDownLatch(1)
        var ok = false
        dpm.clearApplicationUserData(admin, pkg, { it.run() }) { _, succeeded ->
            ok = succeeded
            done.countDown()
        }
        if (!done.await(CLEAR_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            return error(FAILED, "no answer from the system in $CLEAR_TIMEOUT_SECONDS s")
        }
        return if (ok) ack("data of $pkg cleared") else error(FAILED, "the system could not clear $pkg's data (is it installed?)")
    }

    companion object {
        const val LOCK = "lock"
        const val REBOOT = "reboot"
        const val WIPE = "wipe"
        const val RESET_PASSWORD = "reset_password"
        const val CLEAR_APP_DATA = "clear_app_data"
        const val ENTER_KIOSK = "enter_kiosk"
        const val EXIT_KIOSK = "exit_kiosk"

        /** The command types this app carries out; the others are ERROR "unsupported". */
        val SUPPORTED = setOf(LOCK, REBOOT, WIPE, RESET_PASSWORD, CLEAR_APP_DATA, ENTER_KIOSK, EXIT_KIOSK)

        private const val UNSUPPORTED = "unsupported"
        private const val BAD_PARAMS = "bad_params"
        private const val FAILED = "failed"
        private const val CLEAR_TIMEOUT_SECONDS = 30L

        private fun ack(message: String, runAfterReport: Boolean = false): String =
            JSONObject().put("state", "ACKNOWLEDGED").put("message", message)
                .apply { if (runAfterReport) put("runAfterReport", true) }
                .toString()

        private fun error(code: String, message: String): String =
            JSONObject().put("state", "ERROR").put("errorCode", code).put("message", message).toString()

        private fun notNow(message: String): String =
            JSONObject().put("state", "NOT_NOW").put("message", message).toString()
    }
}

/**
 * The reset-password token (Android 8+): set once by the device owner and
 * kept in the app's private preferences, so reset_password can change the
 * password later. Android activates it at once on a device without a
 * secure lock screen, else at the user's next unlock.
 */
object ResetPasswordToken {
    private const val PREFS = "doorbell-executor"
    private const val KEY = "resetPasswordToken"

    /** The token, set with setResetPasswordToken when this app has none yet. */
    fun ensure(context: Context, dpm: DevicePolicyManager, admin: ComponentName): ByteArray {
        val prefs = context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
        // Set once: setting it again would replace it with one that must be
        // activated anew. The system forgets it only with the app's data.
        prefs.getString(KEY, null)?.let { return Base64.decode(it, Base64.NO_WRAP) }
        val token = ByteArray(32).also { SecureRandom().nextBytes(it) }
        check(dpm.setResetPasswordToken(admin, token)) { "setResetPasswordToken refused" }
        check(prefs.edit().putString(KEY, Base64.encodeToString(token, Base64.NO_WRAP)).commit()) { "saving the token failed" }
        return token
    }
}
