package org.doorbellmdm.agent

import android.app.admin.DeviceAdminReceiver
import android.app.admin.DevicePolicyManager
import android.content.Context
import android.content.Intent
import android.os.PersistableBundle

/**
 * The device-owner admin component. Provisioning hands over the server URL,
 * the enrollment token and the kiosk flag (QR admin extras bundle); becoming
 * the device owner starts the first sync (and a kiosk's doorbell).
 */
class AdminReceiver : DeviceAdminReceiver() {
    override fun onProfileProvisioningComplete(context: Context, intent: Intent) {
        val extras: PersistableBundle? =
            intent.getParcelableExtra(DevicePolicyManager.EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE)
        if (extras != null) {
            DoorbellAgent.saveProvisioningExtras(
                context,
                extras.getString("serverUrl"),
                extras.getString("enrollToken"),
                if (extras.containsKey("kiosk")) extras.getBoolean("kiosk") else null,
            )
        }
        start(context)
    }

    override fun onEnabled(context: Context, intent: Intent) {
        start(context)
    }

    private fun start(context: Context) {
        SyncWorker.syncNow(context)
        if (DoorbellAgent.isKiosk(context)) KioskService.start(context)
    }
}
