package org.doorbellmdm.agent

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.os.Build
import android.os.IBinder
import android.util.Log
import androidx.core.app.NotificationCompat
import androidx.core.app.ServiceCompat
import androidx.core.content.ContextCompat

/**
 * Kiosks only: keeps the Go agent's own loop (MQTT doorbell, periodic sync)
 * running in a foreground service. Every start command starts the loop of
 * the current agent (starting a running loop does nothing), so after
 * DoorbellAgent replaced the agent, KioskService.start runs the new one.
 */
class KioskService : Service() {
    override fun onCreate() {
        super.onCreate()
        val type = if (Build.VERSION.SDK_INT >= 34) ServiceInfo.FOREGROUND_SERVICE_TYPE_SPECIAL_USE else 0
        ServiceCompat.startForeground(this, NOTIFICATION_ID, notification(), type)
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        try {
            DoorbellAgent.get(this).startDoorbell()
        } catch (e: Exception) {
            Log.e(LogcatLogger.TAG, "starting the doorbell: ${e.message}")
            stopSelf()
            return START_NOT_STICKY
        }
        return START_STICKY
    }

    override fun onDestroy() {
        // stop() waits for the MQTT session to close: not on the main thread.
        // Only an agent that exists can be running; none is created here.
        val agent = DoorbellAgent.current()
        Thread {
            try {
                agent?.stop()
            } catch (e: Exception) {
                Log.w(LogcatLogger.TAG, "stopping the doorbell: ${e.message}")
            }
        }.start()
        super.onDestroy()
    }

    override fun onBind(intent: Intent?): IBinder? = null

    private fun notification(): Notification {
        return NotificationCompat.Builder(this, channel(this))
            .setSmallIcon(android.R.drawable.stat_notify_sync)
            .setContentTitle(getString(R.string.kiosk_notification))
            .setOngoing(true)
            .build()
    }

    companion object {
        const val CHANNEL = "doorbell"
        const val NOTIFICATION_ID = 1

        fun start(context: Context) {
            ContextCompat.startForegroundService(context, Intent(context, KioskService::class.java))
        }

        fun stop(context: Context) {
            context.stopService(Intent(context, KioskService::class.java))
        }

        /** The channel of the kiosk's and the expedited sync's notifications. */
        fun channel(context: Context): String {
            val manager = context.getSystemService(NotificationManager::class.java)
            manager.createNotificationChannel(
                NotificationChannel(CHANNEL, context.getString(R.string.kiosk_channel), NotificationManager.IMPORTANCE_MIN),
            )
            return CHANNEL
        }
    }
}
