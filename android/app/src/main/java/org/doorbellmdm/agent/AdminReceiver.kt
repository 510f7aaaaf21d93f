package org.doorbellmdm.agent

import android.app.admin.DeviceAdminReceiver
import android.app.admin.DevicePolicyManager
import android.content.ComponentName
import android.content.Context
import android.content.Intent
import android.os.PersistableBundle

/**
 * The device-owner admin component. Provisioning hands over the server URL,
 * the enrollment token and the kiosk flag (QR admin extras bundle); becoming
 * the device owner starts the first sync (and a kiosk's doorbell). On
 * Android 12+ the extras arrive at PolicyComplianceActivity too; saving them
 * twice is harmless.
 */
class AdminReceiver : DeviceAdminReceiver() {
    override fun onProfileProvisioningComplete(context: Context, intent: Intent) {
        val extras: PersistableBundle? =
            intent.getParcelableExtra(DevicePolicyManager.EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE)
        DoorbellAgent.provisioned(context, extras)
    }

    override fun onEnabled(context: Context, intent: Intent) {
        DoorbellAgent.start(context)
    }

    companion object {
        fun component(context: Context) = ComponentName(context, AdminReceiver::class.java)
    }
}
