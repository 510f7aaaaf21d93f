package org.doorbellmdm.agent

import android.app.admin.DevicePolicyManager
import android.content.Context
import android.os.Build
import android.os.PersistableBundle
import android.util.Log
import org.doorbellmdm.doorbell.Agent
import org.doorbellmdm.doorbell.Doorbell

/**
 * The one Go agent of this process. Every decision (enrolling, syncing,
 * coalescing doorbells, reporting) is made in Go; this object only builds the
 * agent from the app's settings and hands it the Android pieces.
 */
object DoorbellAgent {
    private const val PREFS = "doorbell-agent"
    private const val KEY_SERVER_URL = "config.serverUrl"
    private const val KEY_ENROLL_TOKEN = "config.enrollToken"
    private const val KEY_KIOSK = "config.kiosk"

    @Volatile private var agent: Agent? = null

    /** Returns the agent, creating it on first use. */
    fun get(context: Context): Agent =
        agent ?: synchronized(this) {
            agent ?: create(context.applicationContext).also { agent = it }
        }

    /** The agent if one was created, without creating one. */
    fun current(): Agent? = agent

    /** Whether this device is a kiosk (MQTT doorbell in a foreground service). */
    fun isKiosk(context: Context): Boolean =
        prefs(context).getBoolean(KEY_KIOSK, BuildConfig.KIOSK)

    /** The first sync, and a kiosk's doorbell. */
    fun start(context: Context) {
        SyncWorker.syncNow(context)
        if (isKiosk(context)) KioskService.start(context)
    }

    /**
     * Provisioning finished (AdminReceiver, or PolicyComplianceActivity on
     * Android 12+): saves the QR code's admin extras, then starts.
     */
    fun provisioned(context: Context, extras: PersistableBundle?) {
        if (extras == null) {
            start(context)
            return
        }
        saveProvisioningExtras(
            context,
            extras.getString("serverUrl"),
            extras.getString("enrollToken"),
            if (extras.containsKey("kiosk")) extras.getBoolean("kiosk") else null,
        )
    }

    /**
     * Saves settings handed over at provisioning (the QR code's admin extras
     * bundle) and replaces the agent with one built from them. The old agent
     * may be running KioskService's doorbell loop: it is stopped (off the
     * main thread: stop() waits for its MQTT session to close) before the
     * kiosk service starts the new agent's loop, so two agents never run.
     * A sync in flight on the old agent finishes with the old settings.
     */
    fun saveProvisioningExtras(context: Context, serverUrl: String?, enrollToken: String?, kiosk: Boolean?) {
        val app = context.applicationContext
        val old: Agent?
        synchronized(this) {
            prefs(app).edit().apply {
                serverUrl?.let { putString(KEY_SERVER_URL, it) }
                enrollToken?.let { putString(KEY_ENROLL_TOKEN, it) }
                kiosk?.let { putBoolean(KEY_KIOSK, it) }
            }.commit()
            old = agent
            agent = null
        }
        Thread {
            try {
                old?.stop()
            } catch (e: Exception) {
                Log.w(LogcatLogger.TAG, "stopping the previous agent: ${e.message}")
            }
            if (!isKiosk(app)) KioskService.stop(app)
            start(app)
        }.start()
    }

    private fun create(context: Context): Agent {
        val prefs = prefs(context)
        val config = Doorbell.newConfig().apply {
            setServerURL(prefs.getString(KEY_SERVER_URL, null) ?: BuildConfig.SERVER_URL)
            setEnrollToken(prefs.getString(KEY_ENROLL_TOKEN, null) ?: BuildConfig.ENROLL_TOKEN)
            // Phones sleep: no MQTT, the FCM doorbell wakes them instead.
            setDisableMQTT(!isKiosk(context))
            setModel("${Build.MANUFACTURER} ${Build.MODEL}")
            setOSVersion("Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})")
            setAgentVersion(BuildConfig.VERSION_NAME)
            setExecutor(DpmExecutor(context))
            setCollector(AndroidCollector(context))
            setNotifier(GuidedNotifier(context))
            setStateDir(context.filesDir.path)
        }
        prepareResetPasswordToken(context)
        return Agent(config, DpmEnforcer(context), PrefsStore(prefs), LogcatLogger())
    }

    /**
     * Sets the reset-password token as early as possible: Android activates
     * it at the user's next unlock, and reset_password answers NOT_NOW until
     * then.
     */
    private fun prepareResetPasswordToken(context: Context) {
        val dpm = context.getSystemService(DevicePolicyManager::class.java)
        if (!dpm.isDeviceOwnerApp(context.packageName)) return
        try {
            ResetPasswordToken.ensure(context, dpm, AdminReceiver.component(context))
        } catch (e: Exception) {
            Log.w(LogcatLogger.TAG, "setting the reset-password token: ${e.message}")
        }
    }

    private fun prefs(context: Context) =
        context.applicationContext.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
}
