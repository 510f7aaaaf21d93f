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
 */
object Kiosk {
    private const val HOME_ALIAS = "org.doorbellmdm.agent.KioskHome"

    fun apply(context: Context, dpm: DevicePolicyManager, admin: ComponentName, packages: List<String>) {
        val before = packages(context, dpm, admin)
        val home = ComponentName(context.packageName, HOME_ALIAS)
        if (packages.isEmpty()) {
            dpm.setLockTaskPackages(admin, arrayOf())
            dpm.clearPackagePersistentPreferredActivities(admin, context.packageName)
            context.packageManager.setComponentEnabledSetting(
                home, PackageManager.COMPONENT_ENABLED_STATE_DISABLED, PackageManager.DONT_KILL_APP,
            )
            if (lockTaskActive(context)) KioskActivity.start(context, leave = true)
            return
        }
        dpm.setLockTaskPackages(admin, (packages + context.packageName).toTypedArray())
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
        if (intent.getBooleanExtra(EXTRA_LEAVE, false) || packages.isEmpty()) {
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
