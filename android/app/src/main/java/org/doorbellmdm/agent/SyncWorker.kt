package org.doorbellmdm.agent

import android.content.Context
import android.util.Log
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.core.app.NotificationCompat
import androidx.work.ForegroundInfo
import androidx.work.OneTimeWorkRequest
import androidx.work.OutOfQuotaPolicy
import androidx.work.PeriodicWorkRequest
import androidx.work.WorkManager
import androidx.work.Worker
import androidx.work.WorkerParameters
import java.util.concurrent.TimeUnit

/**
 * Runs one sync of the Go agent: every 15 minutes (the backstop for every lost
 * doorbell) and once at once when asked. A failed sync is retried with
 * WorkManager's backoff.
 *
 * syncNow() asks for expedited work. On Android 12+ that is an expedited job;
 * before 12 WorkManager runs expedited work as a foreground service and asks
 * the worker for its notification (getForegroundInfo): a Worker without one
 * fails there without running, so this one has one.
 */
class SyncWorker(context: Context, params: WorkerParameters) : Worker(context, params) {
    override fun doWork(): Result =
        try {
            DoorbellAgent.get(applicationContext).sync()
            Result.success()
        } catch (e: Exception) {
            Log.w(LogcatLogger.TAG, "sync failed: ${e.message}")
            Result.retry()
        }

    override fun getForegroundInfo(): ForegroundInfo {
        val notification = NotificationCompat.Builder(applicationContext, KioskService.channel(applicationContext))
            .setSmallIcon(android.R.drawable.stat_notify_sync)
            .setContentTitle(applicationContext.getString(R.string.sync_notification))
            .setPriority(NotificationCompat.PRIORITY_MIN)
            .build()
        return ForegroundInfo(NOTIFICATION_ID, notification)
    }

    companion object {
        private const val PERIODIC = "doorbell-sync"
        private const val NOW = "doorbell-sync-now"
        private const val NOTIFICATION_ID = 2

        private val online = Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build()

        /** Schedules the 15-minute sync; an existing schedule is kept. */
        fun schedule(context: Context) {
            val request = PeriodicWorkRequest.Builder(SyncWorker::class.java, 15, TimeUnit.MINUTES)
                .setConstraints(online)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context)
                .enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.KEEP, request)
        }

        /** Syncs as soon as the network allows (a doorbell that could not sync at once). */
        fun syncNow(context: Context) {
            val request = OneTimeWorkRequest.Builder(SyncWorker::class.java)
                .setConstraints(online)
                .setExpedited(OutOfQuotaPolicy.RUN_AS_NON_EXPEDITED_WORK_REQUEST)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context)
                .enqueueUniqueWork(NOW, ExistingWorkPolicy.REPLACE, request)
        }
    }
}
