package org.doorbellmdm.agent

import android.app.Activity
import android.app.admin.DevicePolicyManager
import android.content.Intent
import android.os.Bundle
import android.os.PersistableBundle

/**
 * QR-code provisioning on Android 12+ (API 31) asks the admin app which mode
 * to provision (ACTION_GET_PROVISIONING_MODE) and then lets it apply its
 * policy before setup finishes (ACTION_ADMIN_POLICY_COMPLIANCE); without
 * these two activities the setup wizard fails provisioning. Both receive the
 * QR code's admin extras bundle.
 */
class ProvisioningModeActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        // Doorbell manages whole devices: fully managed (device owner).
        val result = Intent().putExtra(
            DevicePolicyManager.EXTRA_PROVISIONING_MODE,
            DevicePolicyManager.PROVISIONING_MODE_FULLY_MANAGED_DEVICE,
        )
        setResult(RESULT_OK, result)
        finish()
    }
}

/** Saves the admin extras, starts the first sync (and a kiosk's doorbell), and lets setup finish. */
class PolicyComplianceActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val extras: PersistableBundle? =
            intent.getParcelableExtra(DevicePolicyManager.EXTRA_PROVISIONING_ADMIN_EXTRAS_BUNDLE)
        DoorbellAgent.provisioned(this, extras)
        setResult(RESULT_OK)
        finish()
    }
}
