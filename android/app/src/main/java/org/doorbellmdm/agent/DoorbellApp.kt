package org.doorbellmdm.agent

import android.app.Application
import android.util.Log
import com.google.firebase.FirebaseApp
import com.google.firebase.messaging.FirebaseMessaging

/**
 * Schedules the periodic sync and hands the current FCM token to the agent at
 * every start (the agent registers it only when it changed).
 */
class DoorbellApp : Application() {
    override fun onCreate() {
        super.onCreate()
        SyncWorker.schedule(this)
        if (FirebaseApp.getApps(this).isEmpty()) {
            Log.w(LogcatLogger.TAG, "no google-services.json: FCM doorbell off, periodic sync only")
            return
        }
        FirebaseMessaging.getInstance().token.addOnSuccessListener { token ->
            Thread {
                try {
                    DoorbellAgent.get(this).onNewToken(token)
                } catch (e: Exception) {
                    Log.w(LogcatLogger.TAG, "registering the FCM token: ${e.message}")
                }
            }.start()
        }
    }
}
