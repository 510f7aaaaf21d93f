// Harness drives the REAL gobind bindings of package doorbell on the host JVM
// against a real `doorbell serve`, the way the Android app does: Enforcer,
// Store and Logger are implemented in Java, and the agent is driven through
// sync(), onNewToken(), onPushMessage(), startDoorbell() and stop().
//
// Usage: java -Djava.library.path=DIR Harness SERVER_URL ENROLL_TOKEN ADMIN_TOKEN
// It prints one line per check and exits 0 only when every check passed.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.doorbellmdm.doorbell.Agent;
import org.doorbellmdm.doorbell.Config;
import org.doorbellmdm.doorbell.Doorbell;
import org.doorbellmdm.doorbell.Enforcer;
import org.doorbellmdm.doorbell.Logger;
import org.doorbellmdm.doorbell.Store;

public final class Harness {
    /** The device, as DevicePolicyManager would hold it. */
    static final class JavaEnforcer implements Enforcer {
        volatile boolean disabled;
        volatile String refuse; // when set, setCameraDisabled throws with this message
        int sets;

        @Override public synchronized void setCameraDisabled(boolean d) throws Exception {
            sets++;
            if (refuse != null) {
                throw new SecurityException(refuse);
            }
            disabled = d;
        }

        @Override public boolean isCameraDisabled() {
            return disabled;
        }
    }

    /** SharedPreferences, in memory. */
    static final class JavaStore implements Store {
        final Map<String, String> m = new HashMap<>();

        @Override public synchronized String get(String key) {
            String v = m.get(key);
            return v == null ? "" : v;
        }

        @Override public synchronized void put(String key, String value) {
            m.put(key, value);
        }

        @Override public synchronized void delete(String key) {
            m.remove(key);
        }
    }

    /** Logcat: prints and keeps every line. */
    static final class JavaLogger implements Logger {
        final List<String> lines = new ArrayList<>();

        @Override public synchronized void log(String level, String msg) {
            lines.add(level + " " + msg);
            System.out.println("  go-log " + level + " " + msg);
        }

        synchronized boolean contains(String s) {
            for (String l : lines) {
                if (l.contains(s)) return true;
            }
            return false;
        }
    }

    static String server, enroll, admin, pin;
    static HttpClient http;

    /** An HTTP client for the operator calls that trusts only the server's own CA. */
    static HttpClient httpTrusting(String caFile) throws Exception {
        java.security.KeyStore ks = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType());
        ks.load(null, null);
        try (java.io.InputStream in = new java.io.FileInputStream(caFile)) {
            ks.setCertificateEntry("doorbell-ca", java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        javax.net.ssl.TrustManagerFactory tmf = javax.net.ssl.TrustManagerFactory.getInstance(javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        javax.net.ssl.SSLContext ctx = javax.net.ssl.SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        return HttpClient.newBuilder().sslContext(ctx).build();
    }
    static int failures = 0;

    static void check(boolean ok, String what) {
        System.out.println((ok ? "PASS " : "FAIL ") + what);
        if (!ok) failures++;
    }

    static String api(String method, String path, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server + path))
            .header("Authorization", "Bearer " + admin)
            .header("Content-Type", "application/json");
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IllegalStateException(method + " " + path + ": " + r.statusCode() + " " + r.body());
        }
        return r.body();
    }

    static String field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*(\"[^\"]*\"|[^,}\\s]+)").matcher(json);
        if (!m.find()) throw new IllegalStateException("no " + name + " in " + json);
        return m.group(1).replace("\"", "");
    }

    static String status(String id) throws Exception {
        return api("GET", "/devices/" + id + "/status", null);
    }

    static long setCamera(String id, boolean disabled) throws Exception {
        String p = api("PUT", "/devices/" + id + "/policy", "{\"cameraDisabled\": " + disabled + "}");
        return Long.parseLong(field(p, "version"));
    }

    static Config config(String enrollToken, boolean disableMQTT) {
        Config c = Doorbell.newConfig();
        c.setServerURL(server);
        c.setServerPin(pin);
        c.setEnrollToken(enrollToken);
        c.setDisableMQTT(disableMQTT);
        c.setModel("host-jvm");
        c.setAgentVersion("binding-test");
        return c;
    }

    /** Waits (polling, a guard against a hang) until cond holds. */
    interface Cond { boolean get() throws Exception; }

    static boolean eventually(Cond c) throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (System.nanoTime() < deadline) {
            if (c.get()) return true;
            Thread.sleep(50);
        }
        return c.get();
    }

    public static void main(String[] args) throws Exception {
        server = args[0];
        enroll = args[1];
        admin = args[2];
        pin = args[3];
        http = httpTrusting(args[4]);

        // 1. An error crossing Go -> Java: a wrong enrollment token.
        {
            JavaStore store = new JavaStore();
            Agent bad = new Agent(config("not-the-token", true), new JavaEnforcer(), store, new JavaLogger());
            String msg = null;
            try {
                bad.sync();
            } catch (Exception e) {
                msg = e.getMessage();
            }
            System.out.println("  sync with a wrong token threw: " + msg);
            check(msg != null && msg.contains("enrolling device") && msg.contains("401"),
                "Go error crosses into Java as an exception with a clear message");
            check(store.get(Doorbell.IdentityKey).isEmpty(), "no identity stored after a failed enrollment");
        }

        // 2. Convergence, phone mode (no MQTT; FCM doorbells).
        JavaEnforcer enforcer = new JavaEnforcer();
        JavaStore store = new JavaStore();
        JavaLogger log = new JavaLogger();
        Agent phone = new Agent(config(enroll, true), enforcer, store, log);
        check(phone.deviceID().isEmpty(), "deviceID() is empty before enrolling");
        phone.sync();
        String id = phone.deviceID();
        check(!id.isEmpty(), "sync() enrolled the device: " + id);
        check(store.get(Doorbell.IdentityKey).contains("\"deviceId\":\"" + id + "\""),
            "the identity JSON is kept in the Java Store");

        phone.onNewToken("host-jvm-fcm-token");
        check(field(status(id), "fcmRegistered").equals("true"), "onNewToken() registered the FCM token");

        long v = setCamera(id, true);
        phone.onPushMessage("{\"type\":\"policy_changed\",\"version\":\"" + v + "\"}");
        String st = status(id);
        System.out.println("  status after the doorbell: " + st);
        check(enforcer.disabled, "the Java enforcer has cameraDisabled=true after onPushMessage");
        check(field(st, "state").equals("COMPLIANT") && field(st, "appliedVersion").equals(String.valueOf(v)),
            "the server says COMPLIANT at version " + v);

        // 3. A Java exception crossing Java -> Go: the enforcer refuses.
        enforcer.refuse = "camera policy refused by the harness";
        setCamera(id, false);
        String pushErr = null;
        try {
            phone.onPushMessage("{\"type\":\"policy_changed\"}");
        } catch (Exception e) {
            pushErr = e.getMessage();
        }
        st = status(id);
        System.out.println("  status after a refused enforcement: " + st);
        check(pushErr == null, "a refused enforcement is reported, not thrown (" + pushErr + ")");
        check(enforcer.disabled, "the refusing enforcer kept cameraDisabled=true");
        check(field(st, "state").equals("NON_COMPLIANT"), "the server says NON_COMPLIANT");
        check(log.contains("camera policy refused by the harness"),
            "Go received the Java exception's message as an error (logged)");
        enforcer.refuse = null;

        // 4. A restarted app: the identity comes back from the Java Store.
        Agent again = new Agent(config("", true), enforcer, store, log);
        check(again.deviceID().equals(id), "a new Agent on the same Store is the same device");
        again.sync();
        st = status(id);
        check(!enforcer.disabled && field(st, "state").equals("COMPLIANT"),
            "the restarted agent converges (cameraDisabled=false, COMPLIANT)");

        // 5. Kiosk mode: the MQTT doorbell loop through startDoorbell()/stop().
        Agent kiosk = new Agent(config("", false), enforcer, store, log);
        kiosk.startDoorbell();
        check(eventually(() -> field(status(id), "connected").equals("true")), "startDoorbell() connected over MQTT");
        long v2 = setCamera(id, true);
        check(eventually(() -> enforcer.disabled
                && field(status(id), "state").equals("COMPLIANT")
                && field(status(id), "appliedVersion").equals(String.valueOf(v2))),
            "the kiosk converged through the MQTT doorbell at version " + v2);
        kiosk.stop();
        check(eventually(() -> field(status(id), "connected").equals("false")), "stop() closed the MQTT session");

        if (failures > 0) {
            System.out.println("HARNESS FAILED: " + failures + " check(s)");
            System.exit(1);
        }
        System.out.println("HARNESS OK");
        System.exit(0);
    }
}
