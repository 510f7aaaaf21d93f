package org.doorbellmdm.agent

import android.app.ActivityManager
import android.app.admin.DevicePolicyManager
import android.content.Context
import android.os.BatteryManager
import android.os.Build
import android.os.Environment
import android.os.StatFs
import java.net.NetworkInterface
import org.doorbellmdm.doorbell.Collector
import org.json.JSONArray
import org.json.JSONObject

/**
 * Reads the device's inventory for the Go agent, as the JSON sections of
 * GET /devices/{id}/inventory (docs/INVENTORY.md names each field's source).
 * It only reads, and lists come sorted, so an unchanged section keeps its
 * hash and is not sent again. A fact that cannot be read (a permission the
 * app lacks) is left out, never guessed.
 *
 * - system: "android", the release, "Android <release>", the kernel
 *   (os.version), the primary ABI.
 * - hardware: Build.MANUFACTURER / MODEL, the serial (Build.getSerial: the
 *   device owner may read it on Android 10+; on 8-9 with READ_PHONE_STATE),
 *   memory (ActivityManager.MemoryInfo.totalMem).
 * - disks: the data partition's size and free space (StatFs).
 * - network: each interface that is up or has an address
 *   (java.net.NetworkInterface); MACs are hidden from apps on 11+, so
 *   wlan0's comes from getWifiMacAddress (device owner).
 * - packages: every installed package with its versionName and version code
 *   (getInstalledPackages; QUERY_ALL_PACKAGES on 11+).
 * - android: API level, security patch, build fingerprint, battery level
 *   and charging (BatteryManager), device owner.
 */
class AndroidCollector(private val context: Context) : Collector {
    private val dpm = context.getSystemService(DevicePolicyManager::class.java)

    override fun collect(): String {
        val owner = dpm.isDeviceOwnerApp(context.packageName)
        return JSONObject()
            .put("system", system())
            .put("hardware", hardware(owner))
            .put("disks", disks())
            .put("network", network(owner))
            .put("packages", packages())
            .put("android", android(owner))
            .toString()
    }

    private fun system(): JSONObject =
        JSONObject()
            .put("osId", "android")
            .put("osVersion", Build.VERSION.RELEASE)
            .put("osName", "Android ${Build.VERSION.RELEASE}")
            .putOpt("kernel", System.getProperty("os.version"))
            .putOpt("arch", Build.SUPPORTED_ABIS.firstOrNull())

    private fun hardware(owner: Boolean): JSONObject {
        val mem = ActivityManager.MemoryInfo()
        context.getSystemService(ActivityManager::class.java).getMemoryInfo(mem)
        return JSONObject()
            .put("vendor", Build.MANUFACTURER)
            .put("model", Build.MODEL)
            .putOpt("serial", if (owner) serial() else null)
            .put("cpuCount", Runtime.getRuntime().availableProcessors())
            .put("memoryBytes", mem.totalMem)
    }

    private fun serial(): String? =
        try {
            Build.getSerial().takeIf { it.isNotEmpty() && it != Build.UNKNOWN }
        } catch (e: SecurityException) {
            null
        }

    private fun disks(): JSONObject {
        val data = StatFs(Environment.getDataDirectory().path)
        val disk = JSONObject()
            .put("name", "data")
            .put("type", "internal")
            .put("sizeBytes", data.totalBytes)
            .put("freeBytes", data.availableBytes)
        return JSONObject().put("disks", JSONArray().put(disk))
    }

    private fun network(owner: Boolean): JSONObject {
        val wifiMac = if (owner) {
            try {
                dpm.getWifiMacAddress(AdminReceiver.component(context))
            } catch (e: SecurityException) {
                null
            }
        } else {
            null
        }
        val out = JSONArray()
        val all = NetworkInterface.getNetworkInterfaces()?.toList().orEmpty().sortedBy { it.name }
        for (i in all) {
            if (i.isLoopback) continue
            val addresses = i.interfaceAddresses.orEmpty()
                .mapNotNull { a -> a.address?.hostAddress?.substringBefore('%')?.let { "$it/${a.networkPrefixLength}" } }
                .sorted()
            if (!i.isUp && addresses.isEmpty()) continue
            val mac = i.hardwareAddress?.joinToString(":") { "%02x".format(it) }
                ?: if (i.name == "wlan0") wifiMac?.lowercase() else null
            out.put(
                JSONObject()
                    .put("name", i.name)
                    .putOpt("mac", mac)
                    .put("up", i.isUp)
                    .put("addresses", JSONArray(addresses)),
            )
        }
        return JSONObject().put("interfaces", out)
    }

    private fun packages(): JSONObject {
        val list = JSONArray()
        for (p in context.packageManager.getInstalledPackages(0).sortedBy { it.packageName }) {
            val code = if (Build.VERSION.SDK_INT >= 28) p.getLongVersionCode() else p.versionCode.toLong()
            list.put(
                JSONObject()
                    .put("name", p.packageName)
                    // The inventory needs a version; a package without a
                    // versionName is known by its code.
                    .put("version", p.versionName?.takeIf { it.isNotEmpty() } ?: code.toString())
                    .put("versionCode", code),
            )
        }
        return JSONObject().put("format", "android").put("packages", list)
    }

    private fun android(owner: Boolean): JSONObject {
        val battery = context.getSystemService(BatteryManager::class.java)
        return JSONObject()
            .put("apiLevel", Build.VERSION.SDK_INT)
            .put("securityPatch", Build.VERSION.SECURITY_PATCH)
            .put("buildFingerprint", Build.FINGERPRINT)
            .put("batteryPercent", battery.getIntProperty(BatteryManager.BATTERY_PROPERTY_CAPACITY).coerceIn(0, 100))
            .put("charging", battery.isCharging())
            .put("deviceOwner", owner)
    }
}
