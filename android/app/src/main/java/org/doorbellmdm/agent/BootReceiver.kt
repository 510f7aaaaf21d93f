package org.doorbellmdm.agent

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent

/**
 * After a reboot or an update: sync once, and bring a kiosk's doorbell back
 * (DoorbellApp.onCreate, which runs first, schedules the periodic sync; a
 * running kiosk service is restarted by the system, START_STICKY).
 */
class BootReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        when (intent.action) {
            Intent.ACTION_BOOT_COMPLETED, Intent.ACTION_MY_PACKAGE_REPLACED -> {
                DoorbellAgent.start(context)
            }
        }
    }
}
