package org.doorbellmdm.agent

import android.app.admin.DevicePolicyManager
import android.content.ComponentName
import android.content.Context
import org.doorbellmdm.doorbell.Enforcer

/**
 * Enforces the policy through DevicePolicyManager as the device owner. A
 * thrown exception reaches the Go agent as an error: it reports the device's
 * actual state, which the server then sees as NON_COMPLIANT.
 */
class DpmEnforcer(private val context: Context) : Enforcer {
    private val dpm = context.getSystemService(DevicePolicyManager::class.java)
    private val admin = ComponentName(context, AdminReceiver::class.java)

    override fun setCameraDisabled(disabled: Boolean) {
        check(dpm.isDeviceOwnerApp(context.packageName)) {
            "not the device owner: adb shell dpm set-device-owner ${context.packageName}/.AdminReceiver"
        }
        dpm.setCameraDisabled(admin, disabled)
    }

    override fun isCameraDisabled(): Boolean = dpm.getCameraDisabled(admin)
}
