package org.doorbellmdm.agent

import android.util.Log
import org.doorbellmdm.doorbell.Logger

/** Sends the Go agent's logs to logcat under the tag DoorbellAgent. */
class LogcatLogger : Logger {
    override fun log(level: String, msg: String) {
        val priority = when (level) {
            "DEBUG" -> Log.DEBUG
            "WARN" -> Log.WARN
            "ERROR" -> Log.ERROR
            else -> Log.INFO
        }
        Log.println(priority, TAG, msg)
    }

    companion object {
        const val TAG = "DoorbellAgent"
    }
}
