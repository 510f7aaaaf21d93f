package org.doorbellmdm.agent

import android.app.Activity
import android.app.ActivityManager
import android.app.admin.DevicePolicyManager
import android.content.ComponentName
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Log
import android.widget.TextView

/**
 * Kiosk mode, driven by the lockTaskPackages setting:
 *
 * - a non-empty list allowlists the packages for lock task (plus this app,
 *   the kiosk's home), makes KioskActivity the persistent home (the
 *   KioskHome alias, disabled outside kiosk mode so phones never offer this
 *   app as a launcher), and starts KioskActivity, which enters lock task and
 *   launches the first package;
 * - an empty list clears the allowlist (Android leaves lock task for tasks no
 *   longer allowlisted), stops lock task if this app still holds it, and
 *   hands home back to the user's launcher.
 *
 * The app's own package is appended to the allowlist and never reported:
 * read back, the list is DevicePolicyManager.getLockTaskPackages without its
 * last entry when that is this app.
 *
 * The exit_kiosk command suspends kiosk mode (for a technician): lock task is
 * left and home handed back, but the allowlist stays as the policy says, so
 * the setting still reads back as compliant. Syncs then leave lock task
 * alone until enter_kiosk resumes it (or the policy empties the list).
 */
object Kiosk {
    private const val HOME_ALIAS = "org.doorbellmdm.agent.KioskHome"
    private const val PREFS = "doorbell-kiosk"
    private const val KEY_SUSPENDED = "suspended"

    fun apply(context: Context, dpm: DevicePolicyManager, admin: ComponentName, packages: List<String>) {
        val before = packages(context, dpm, admin)
        if (packages.isEmpty()) {
            setSuspended(context, false)
            dpm.setLockTaskPackages(admin, arrayOf())
            leave(context, dpm, admin)
            return
        }
        dpm.setLockTaskPackages(admin, (packages + context.packageName).toTypedArray())
        if (suspended(context)) return
        val home = ComponentName(context.packageName, HOME_ALIAS)
        context.packageManager.setComponentEnabledSetting(
            home, PackageManager.COMPONENT_ENABLED_STATE_ENABLED, PackageManager.DONT_KILL_APP,
        )
        val filter = IntentFilter(Intent.ACTION_MAIN).apply {
            addCategory(Intent.CATEGORY_HOME)
            addCategory(Intent.CATEGORY_DEFAULT)
        }
        dpm.addPersistentPreferredActivity(admin, filter, home)
        // Every sync applies the list again: (re)start the kiosk only when
        // the list changed or lock task is not running.
        if (packages != before || !lockTaskActive(context)) KioskActivity.start(context, leave = false)
    }

    /** exit_kiosk: leaves lock task and hands home back until resume. */
    fun suspend(context: Context, dpm: DevicePolicyManager, admin: ComponentName) {
        setSuspended(context, true)
        leave(context, dpm, admin)
    }

    /**
     * enter_kiosk: ends a suspension and enters lock task with the policy's
     * allowlist. False when the policy sets none.
     */
    fun resume(context: Context, dpm: DevicePolicyManager, admin: ComponentName): Boolean {
        val packages = packages(context, dpm, admin)
        if (packages.isEmpty()) return false
        setSuspended(context, false)
        apply(context, dpm, admin, packages) // starts KioskActivity: lock task is not running
        return true
    }

    /** Whether exit_kiosk suspended kiosk mode. */
    fun suspended(context: Context): Boolean =
        context.getSharedPreferences(PREFS, Context.MODE_PRIVATE).getBoolean(KEY_SUSPENDED, false)

    private fun setSuspended(context: Context, value: Boolean) {
        check(context.getSharedPreferences(PREFS, Context.MODE_PRIVATE).edit().putBoolean(KEY_SUSPENDED, value).commit()) {
            "saving the kiosk state failed"
        }
    }

    /** Hands home back to the user's launcher and leaves lock task if this app holds it. */
    private fun leave(context: Context, dpm: DevicePolicyManager, admin: ComponentName) {
        dpm.clearPackagePersistentPreferredActivities(admin, context.packageName)
        context.packageManager.setComponentEnabledSetting(
            ComponentName(context.packageName, HOME_ALIAS),
            PackageManager.COMPONENT_ENABLED_STATE_DISABLED, PackageManager.DONT_KILL_APP,
        )
        if (lockTaskActive(context)) KioskActivity.start(context, leave = true)
    }

    /** The allowlist as the device has it, without the entry this app adds for itself. */
    fun packages(context: Context, dpm: DevicePolicyManager, admin: ComponentName): List<String> {
        val all = dpm.getLockTaskPackages(admin).toList()
        return if (all.isNotEmpty() && all.last() == context.packageName) all.dropLast(1) else all
    }

    fun lockTaskActive(context: Context): Boolean =
        context.getSystemService(ActivityManager::class.java).getLockTaskModeState() !=
            ActivityManager.LOCK_TASK_MODE_NONE
}

/**
 * The kiosk's home screen: in lock task it launches the first allowed package
 * and comes back whenever that app is left; asked to leave (or with an empty
 * allowlist) it stops lock task and finishes.
 */
class KioskActivity : Activity() {
    private lateinit var message: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        message = TextView(this).apply { setPadding(48, 48, 48, 48) }
        setContentView(message)
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        setIntent(intent)
    }

    override fun onResume() {
        super.onResume()
        val dpm = getSystemService(DevicePolicyManager::class.java)
        val packages = Kiosk.packages(this, dpm, AdminReceiver.component(this))
        if (intent.getBooleanExtra(EXTRA_LEAVE, false) || packages.isEmpty() || Kiosk.suspended(this)) {
            if (Kiosk.lockTaskActive(this)) {
                try {
                    stopLockTask()
                } catch (e: Exception) {
                    Log.w(LogcatLogger.TAG, "leaving lock task: ${e.message}")
                }
            }
            finish()
            return
        }
        if (!Kiosk.lockTaskActive(this)) {
            if (!dpm.isLockTaskPermitted(packageName)) {
                message.text = getString(R.string.kiosk_not_permitted)
                return
            }
            startLockTask()
        }
        val launch = packageManager.getLaunchIntentForPackage(packages[0])
        if (launch == null) {
            message.text = getString(R.string.kiosk_app_missing, packages[0])
            return
        }
        startActivity(launch)
    }

    companion object {
        private const val EXTRA_LEAVE = "org.doorbellmdm.agent.LEAVE_KIOSK"

        /**
         * Brings KioskActivity up from the background (a device owner may
         * start activities from the background on Android 10+).
         */
        fun start(context: Context, leave: Boolean) {
            context.startActivity(
                Intent(context, KioskActivity::class.java)
                    .addFlags(Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_CLEAR_TOP)
                    .putExtra(EXTRA_LEAVE, leave),
            )
        }
    }
}
