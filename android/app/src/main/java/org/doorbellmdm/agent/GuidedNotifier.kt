package org.doorbellmdm.agent

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.app.admin.DevicePolicyManager
import android.content.Context
import android.content.Intent
import android.os.Build
import android.provider.Settings
import java.text.DateFormat
import java.text.SimpleDateFormat
import java.util.Locale
import java.util.TimeZone
import org.doorbellmdm.doorbell.Notifier
import org.json.JSONArray

/**
 * Guided remediation (docs/POLICY.md, "Remediation modes"): the Go agent
 * calls showNotice when a setting in guided mode fails and its deadline is
 * new, and this posts one plain notification (android.app.Notification,
 * minSdk 26: a channel of its own, high importance) saying what to fix and
 * by when, in the device's language for dates; tapping it opens Settings.
 * A later notice replaces it; it goes away at the first deadline, when the
 * agent fixes the setting itself. When notifications are off for the app it
 * throws, so the agent does not count the user as told and tries again at
 * the next sync; on Android 13+ the device owner first grants itself
 * POST_NOTIFICATIONS.
 */
class GuidedNotifier(private val context: Context) : Notifier {
    override fun showNotice(title: String, body: String, pendingJSON: String) {
        val manager = context.getSystemService(NotificationManager::class.java)
        if (Build.VERSION.SDK_INT >= 33) grantNotifications()
        check(manager.areNotificationsEnabled()) { "notifications are turned off for ${context.packageName}" }
        manager.createNotificationChannel(
            NotificationChannel(CHANNEL, context.getString(R.string.guided_channel), NotificationManager.IMPORTANCE_HIGH),
        )
        val (text, earliest) = lines(pendingJSON)
        val open = PendingIntent.getActivity(
            context, 0,
            Intent(Settings.ACTION_SETTINGS).addFlags(Intent.FLAG_ACTIVITY_NEW_TASK),
            PendingIntent.FLAG_IMMUTABLE,
        )
        val notification = Notification.Builder(context, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_sys_warning)
            .setContentTitle(title)
            .setContentText(text.ifEmpty { body }.lineSequence().first())
            .setStyle(Notification.BigTextStyle().bigText(text.ifEmpty { body }))
            .setCategory(Notification.CATEGORY_REMINDER)
            .setContentIntent(open)
            .setAutoCancel(false)
            .apply {
                // Gone at the first deadline: the agent then fixes it itself.
                if (earliest != null) setTimeoutAfter(maxOf(0L, earliest - System.currentTimeMillis()))
            }
            .build()
        manager.notify(NOTIFICATION_ID, notification)
    }

    /**
     * One line per setting, with its deadline in the device's time zone and
     * format, and the earliest deadline (epoch ms; null when none parsed).
     */
    private fun lines(pendingJSON: String): Pair<String, Long?> {
        val parse = SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'Z'", Locale.US).apply { timeZone = TimeZone.getTimeZone("UTC") }
        val show = DateFormat.getDateTimeInstance(DateFormat.MEDIUM, DateFormat.SHORT)
        val pending = JSONArray(pendingJSON)
        var earliest: Long? = null
        val text = (0 until pending.length()).joinToString("\n") { i ->
            val p = pending.getJSONObject(i)
            val by = parse.parse(p.getString("remediateBy"))
            if (by != null) earliest = minOf(earliest ?: by.time, by.time)
            context.getString(R.string.guided_line, p.getString("setting"), if (by != null) show.format(by) else p.getString("remediateBy"))
        }
        return text to earliest
    }

    private fun grantNotifications() {
        val dpm = context.getSystemService(DevicePolicyManager::class.java)
        if (!dpm.isDeviceOwnerApp(context.packageName)) return
        dpm.setPermissionGrantState(
            AdminReceiver.component(context), context.packageName, POST_NOTIFICATIONS,
            DevicePolicyManager.PERMISSION_GRANT_STATE_GRANTED,
        )
    }

    companion object {
        const val CHANNEL = "doorbell-guided"
        const val NOTIFICATION_ID = 2
        private const val POST_NOTIFICATIONS = "android.permission.POST_NOTIFICATIONS"
    }
}
