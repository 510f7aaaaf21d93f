package org.doorbellmdm.agent

import android.content.SharedPreferences
import java.io.IOException
import org.doorbellmdm.doorbell.Store

/**
 * The Go agent's key/value store (its identity, as JSON) in private
 * SharedPreferences. Writes use commit(): the agent relies on a saved
 * identity surviving a crash.
 */
class PrefsStore(private val prefs: SharedPreferences) : Store {
    override fun get(key: String): String = prefs.getString(key, null) ?: ""

    override fun put(key: String, value: String) {
        if (!prefs.edit().putString(key, value).commit()) throw IOException("saving $key failed")
    }

    override fun delete(key: String) {
        if (!prefs.edit().remove(key).commit()) throw IOException("deleting $key failed")
    }
}
