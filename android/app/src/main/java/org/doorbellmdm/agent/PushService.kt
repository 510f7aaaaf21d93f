package org.doorbellmdm.agent

import android.util.Log
import com.google.firebase.messaging.FirebaseMessagingService
import com.google.firebase.messaging.RemoteMessage
import org.json.JSONObject

/**
 * The FCM doorbell. The data message ({"type":"policy_changed","version":"N"},
 * {"type":"command_pending"} or {"type":"refresh_inventory"}) goes to the Go
 * agent as JSON, which syncs (running pending commands); a sync that cannot
 * finish here is left to WorkManager.
 */
class PushService : FirebaseMessagingService() {
    override fun onMessageReceived(message: RemoteMessage) {
        val data = JSONObject(message.data).toString()
        try {
            DoorbellAgent.get(this).onPushMessage(data)
        } catch (e: Exception) {
            Log.w(LogcatLogger.TAG, "doorbell sync failed, retrying in the background: ${e.message}")
            SyncWorker.syncNow(this)
        }
    }

    override fun onNewToken(token: String) {
        try {
            DoorbellAgent.get(this).onNewToken(token)
        } catch (e: Exception) {
            // DoorbellApp hands the token over again at the next start.
            Log.w(LogcatLogger.TAG, "registering the FCM token: ${e.message}")
        }
    }
}
