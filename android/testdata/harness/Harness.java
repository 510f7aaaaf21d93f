// Harness drives the REAL gobind bindings of package doorbell on the host JVM
// against a real `doorbell serve`, the way the Android app does: Enforcer,
// Store and Logger are implemented in Java, and the agent is driven through
// sync(), onNewToken(), onPushMessage(), startDoorbell() and stop(). Then
// every setting the policy knows (Doorbell.settingNames()) is set by the
// operator in turn and applied, through the bindings, by an enforcer written
// like the app's DpmEnforcer against an in-memory DevicePolicyManager
// stand-in; and one setting the enforcer refuses fails alone. Last, the
// app's other three parts: a Java Executor runs a lock the operator sends
// (the server sees ACKNOWLEDGED) and a wipe (reported, then run once through
// runAfterReport), a Java Collector's Android inventory is
// read back from GET /devices/{id}/inventory, and a Java Notifier is told
// about a guided setting.
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
import org.doorbellmdm.doorbell.Collector;
import org.doorbellmdm.doorbell.Config;
import org.doorbellmdm.doorbell.Doorbell;
import org.doorbellmdm.doorbell.Enforcer;
import org.doorbellmdm.doorbell.Executor;
import org.doorbellmdm.doorbell.Logger;
import org.doorbellmdm.doorbell.Notifier;
import org.doorbellmdm.doorbell.Store;

public final class Harness {
    /** A camera-only device: supports cameraDisabled, and reports the rest UNSUPPORTED. */
    static final class JavaEnforcer implements Enforcer {
        volatile boolean disabled;
        volatile String refuse; // when set, apply throws with this message
        int sets;

        @Override public boolean supports(String setting) {
            return setting.equals("cameraDisabled");
        }

        @Override public synchronized void apply(String setting, String valueJSON) throws Exception {
            sets++;
            if (refuse != null) {
                throw new SecurityException(refuse);
            }
            disabled = Boolean.parseBoolean(valueJSON);
        }

        @Override public String read(String setting) {
            return String.valueOf(disabled);
        }
    }

    /**
     * An in-memory stand-in for what DevicePolicyManager and UserManager hold
     * for a device owner: each field is what one DPM call changes, named after
     * it. It is the "device" of the every-setting test.
     */
    static final class FakeDpm {
        boolean cameraDisabled, screenCaptureDisabled, statusBarDisabled;
        final java.util.Set<String> userRestrictions = new java.util.TreeSet<>();
        int passwordQuality, passwordMinimumLength;
        String[] lockTaskPackages = new String[0];
        Integer systemUpdatePolicyType; // null: no policy
        int calls;

        static final int PASSWORD_QUALITY_UNSPECIFIED = 0, PASSWORD_QUALITY_NUMERIC = 131072;
        static final int TYPE_INSTALL_AUTOMATIC = 1;
        static final String DISALLOW_USB_FILE_TRANSFER = "no_usb_file_transfer";
    }

    /**
     * The Enforcer as the app's DpmEnforcer implements it (pre-Android 12
     * password path), against FakeDpm: apply calls the DPM stand-in, read
     * reads it back. refuse names a setting whose apply throws.
     */
    static final class DpmStandInEnforcer implements Enforcer {
        static final String SELF = "org.doorbellmdm.agent";
        static final List<String> SUPPORTED = List.of("cameraDisabled", "screenCaptureDisabled", "statusBarDisabled",
            "usbFileTransferDisabled", "passwordMinLength", "lockTaskPackages", "autoUpdatesEnabled");
        final FakeDpm dpm = new FakeDpm();
        volatile String refuse;

        @Override public boolean supports(String setting) {
            return SUPPORTED.contains(setting);
        }

        @Override public void apply(String setting, String v) throws Exception {
            if (setting.equals(refuse)) {
                throw new SecurityException("Admin does not own the " + setting + " policy (refused by the harness)");
            }
            synchronized (dpm) {
                dpm.calls++;
                switch (setting) {
                    case "cameraDisabled": dpm.cameraDisabled = bool(v); break;
                    case "screenCaptureDisabled": dpm.screenCaptureDisabled = bool(v); break;
                    case "statusBarDisabled": dpm.statusBarDisabled = bool(v); break;
                    case "usbFileTransferDisabled":
                        if (bool(v)) dpm.userRestrictions.add(FakeDpm.DISALLOW_USB_FILE_TRANSFER);
                        else dpm.userRestrictions.remove(FakeDpm.DISALLOW_USB_FILE_TRANSFER);
                        break;
                    case "passwordMinLength": {
                        int n = Integer.parseInt(v.trim());
                        dpm.passwordQuality = n > 0 ? FakeDpm.PASSWORD_QUALITY_NUMERIC : FakeDpm.PASSWORD_QUALITY_UNSPECIFIED;
                        dpm.passwordMinimumLength = n;
                        break;
                    }
                    case "lockTaskPackages": {
                        List<String> pkgs = strings(v);
                        if (!pkgs.isEmpty()) pkgs.add(SELF);
                        dpm.lockTaskPackages = pkgs.toArray(new String[0]);
                        break;
                    }
                    case "autoUpdatesEnabled": dpm.systemUpdatePolicyType = bool(v) ? FakeDpm.TYPE_INSTALL_AUTOMATIC : null; break;
                    default: throw new IllegalArgumentException("setting " + setting + " is not supported on Android");
                }
            }
        }

        @Override public String read(String setting) {
            synchronized (dpm) {
                switch (setting) {
                    case "cameraDisabled": return String.valueOf(dpm.cameraDisabled);
                    case "screenCaptureDisabled": return String.valueOf(dpm.screenCaptureDisabled);
                    case "statusBarDisabled": return String.valueOf(dpm.statusBarDisabled);
                    case "usbFileTransferDisabled": return String.valueOf(dpm.userRestrictions.contains(FakeDpm.DISALLOW_USB_FILE_TRANSFER));
                    case "passwordMinLength":
                        return String.valueOf(dpm.passwordQuality < FakeDpm.PASSWORD_QUALITY_NUMERIC ? 0 : dpm.passwordMinimumLength);
                    case "lockTaskPackages": {
                        List<String> all = new ArrayList<>(List.of(dpm.lockTaskPackages));
                        if (!all.isEmpty() && all.get(all.size() - 1).equals(SELF)) all.remove(all.size() - 1);
                        return json(all);
                    }
                    case "autoUpdatesEnabled":
                        return String.valueOf(dpm.systemUpdatePolicyType != null && dpm.systemUpdatePolicyType == FakeDpm.TYPE_INSTALL_AUTOMATIC);
                    default: return "";
                }
            }
        }

        /** The stand-in's state for setting, as the policy's JSON, read from its fields directly. */
        String state(String setting) {
            synchronized (dpm) {
                switch (setting) {
                    case "cameraDisabled": return String.valueOf(dpm.cameraDisabled);
                    case "screenCaptureDisabled": return String.valueOf(dpm.screenCaptureDisabled);
                    case "statusBarDisabled": return String.valueOf(dpm.statusBarDisabled);
                    case "usbFileTransferDisabled": return String.valueOf(dpm.userRestrictions.contains(FakeDpm.DISALLOW_USB_FILE_TRANSFER));
                    case "passwordMinLength":
                        return dpm.passwordQuality == FakeDpm.PASSWORD_QUALITY_NUMERIC ? String.valueOf(dpm.passwordMinimumLength) : "quality " + dpm.passwordQuality;
                    case "lockTaskPackages": return json(List.of(dpm.lockTaskPackages));
                    case "autoUpdatesEnabled": return String.valueOf(dpm.systemUpdatePolicyType);
                    default: return null;
                }
            }
        }

        static boolean bool(String v) {
            switch (v.trim()) {
                case "true": return true;
                case "false": return false;
                default: throw new IllegalArgumentException(v + " is not true or false");
            }
        }
    }

    /** A JSON list of strings (package names and setting names need no escaping). */
    static String json(List<String> l) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < l.size(); i++) {
            if (i > 0) b.append(',');
            b.append('"').append(l.get(i)).append('"');
        }
        return b.append(']').toString();
    }

    /** Parses a JSON list of plain strings. */
    static List<String> strings(String json) {
        List<String> out = new ArrayList<>();
        Matcher m = Pattern.compile("\"([^\"]*)\"").matcher(json);
        while (m.find()) out.add(m.group(1));
        return out;
    }

    /**
     * The app's DpmExecutor, recording: lock is lockNow on the DPM stand-in;
     * wipe answers ACKNOWLEDGED with runAfterReport, as the app does, and
     * runAfterReport (the wipe itself) records what the server said about
     * the command at that moment.
     */
    static final class JavaExecutor implements Executor {
        final List<String> calls = new ArrayList<>();
        final List<String> after = new ArrayList<>();
        volatile String wipeId; // the wipe command whose state runAfterReport reads

        @Override public boolean supports(String type) {
            return type.equals("lock") || type.equals("wipe");
        }

        @Override public synchronized String execute(String type, String paramsJSON) throws Exception {
            calls.add(type + " " + paramsJSON);
            if (type.equals("wipe")) {
                return "{\"state\":\"ACKNOWLEDGED\",\"message\":\"wiping\",\"runAfterReport\":true}";
            }
            // DevicePolicyManager.lockNow()
            return "{\"state\":\"ACKNOWLEDGED\",\"output\":\"locked by the harness\"}";
        }

        @Override public void runAfterReport(String type, String paramsJSON) throws Exception {
            String state = field(api("GET", "/commands/" + wipeId, null), "state");
            synchronized (this) {
                after.add(type + " " + paramsJSON + " server:" + state);
            }
        }

        synchronized List<String> calls() {
            return new ArrayList<>(calls);
        }

        synchronized List<String> after() {
            return new ArrayList<>(after);
        }
    }

    /** The app's AndroidCollector, with the values a Pixel would give. */
    static final class JavaCollector implements Collector {
        int calls;

        @Override public synchronized String collect() {
            calls++;
            return "{\"system\":{\"osId\":\"android\",\"osVersion\":\"14\",\"osName\":\"Android 14\",\"kernel\":\"5.15.123-android14\"},"
                + "\"hardware\":{\"vendor\":\"Google\",\"model\":\"Pixel 8\",\"serial\":\"38011FDJH00ABC\"},"
                + "\"packages\":{\"format\":\"android\",\"packages\":[{\"name\":\"com.android.chrome\",\"version\":\"120.0.6099.43\",\"versionCode\":609904333}]},"
                + "\"android\":{\"apiLevel\":34,\"securityPatch\":\"2026-10-05\",\"buildFingerprint\":\"google/shiba/shiba:14/AP1A/1:user/release-keys\",\"deviceOwner\":true}}";
        }
    }

    /** The app's GuidedNotifier: keeps what it would post. */
    static final class JavaNotifier implements Notifier {
        final List<String> notices = new ArrayList<>();

        @Override public synchronized void showNotice(String title, String body, String pendingJSON) {
            notices.add(title + "\n" + body + "\n" + pendingJSON);
        }

        synchronized List<String> notices() {
            return new ArrayList<>(notices);
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

    static long putPolicy(String id, String body) throws Exception {
        return Long.parseLong(field(api("PUT", "/devices/" + id + "/policy", body), "version"));
    }

    /**
     * For each setting: a first and a second value (JSON), and the state the
     * DPM stand-in must hold for each (DpmStandInEnforcer.state). A setting
     * the policy knows but this table lacks fails the test: teach it here
     * (and the app) when the catalog grows.
     */
    static final Map<String, String[]> SAMPLES = new HashMap<>();
    static {
        for (String b : List.of("cameraDisabled", "screenCaptureDisabled", "statusBarDisabled", "usbFileTransferDisabled")) {
            SAMPLES.put(b, new String[] {"true", "true", "false", "false"});
        }
        SAMPLES.put("passwordMinLength", new String[] {"6", "6", "0", "quality 0"});
        SAMPLES.put("lockTaskPackages", new String[] {"[\"org.example.kiosk\",\"org.example.help\"]",
            "[\"org.example.kiosk\",\"org.example.help\",\"" + DpmStandInEnforcer.SELF + "\"]", "[]", "[]"});
        SAMPLES.put("autoUpdatesEnabled", new String[] {"true", "1", "false", "null"});
    }

    /**
     * Sets a setting the harness has no sample for (one the enforcer does not
     * support) to the first value of a plausible type the server accepts, so
     * a setting added to the catalog is covered with no change here.
     */
    static long putAnyValue(String id, String name) throws Exception {
        Exception last = null;
        for (String v : List.of("true", "1", "[\"org.example.any\"]", "\"x\"", "[]", "{}", "{\"minlen\":12,\"minclass\":3}")) {
            try {
                return putPolicy(id, "{\"" + name + "\": " + v + "}");
            } catch (IllegalStateException e) {
                last = e; // 400: not a value of this setting's type
            }
        }
        throw new IllegalStateException("no value of " + name + " is accepted: " + last.getMessage());
    }

    static int count(String s, String sub) {
        int n = 0;
        for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + 1)) n++;
        return n;
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

        // 6. Every setting the policy knows, edited in turn by the operator and
        // applied through the real bindings to the DPM stand-in.
        DpmStandInEnforcer dev = new DpmStandInEnforcer();
        Agent device = new Agent(config(enroll, true), dev, new JavaStore(), log);
        device.sync();
        String did = device.deviceID();
        check(!did.isEmpty() && field(status(did), "state").equals("COMPLIANT"), "the DPM stand-in device enrolled: " + did);
        List<String> names = strings(Doorbell.settingNames());
        System.out.println("  settings: " + names);
        String push = "{\"type\":\"policy_changed\"}";
        for (String name : names) {
            String[] sample = SAMPLES.get(name);
            if (dev.supports(name) && sample == null) {
                check(false, "the harness has a sample value for " + name);
                check(false, name + " reached the device");
                continue;
            }
            long ver = sample != null ? putPolicy(did, "{\"" + name + "\": " + sample[0] + "}") : putAnyValue(did, name);
            device.onPushMessage(push);
            st = status(did);
            if (dev.supports(name)) {
                check(sample[1].equals(dev.state(name)), name + "=" + sample[0] + " reached the DPM stand-in as " + dev.state(name));
                check(field(st, "state").equals("COMPLIANT") && field(st, "appliedVersion").equals(String.valueOf(ver)),
                    "the server says COMPLIANT at version " + ver + " after " + name);
            } else {
                check(field(st, "state").equals("NON_COMPLIANT") && count(st, "\"reason\"") == 1
                        && st.contains("\"setting\":\"" + name + "\"") && st.contains("\"UNSUPPORTED\""),
                    name + " is reported UNSUPPORTED, alone: " + st);
                putPolicy(did, "{\"" + name + "\": null}");
                device.onPushMessage(push);
                check(field(status(did), "state").equals("COMPLIANT"), name + " no longer managed: COMPLIANT again");
            }
        }

        // 7. The enforcer throws for one setting: that one is ENFORCEMENT_FAILED,
        // every other one is applied.
        String refused = "statusBarDisabled";
        dev.refuse = refused;
        StringBuilder body = new StringBuilder("{");
        for (String name : names) {
            if (!dev.supports(name) || SAMPLES.get(name) == null) continue;
            if (body.length() > 1) body.append(',');
            body.append('"').append(name).append("\": ").append(SAMPLES.get(name)[2]);
        }
        putPolicy(did, body.append('}').toString());
        device.onPushMessage(push);
        st = status(did);
        System.out.println("  status with " + refused + " refused: " + st);
        check(field(st, "state").equals("NON_COMPLIANT"), "a refused setting makes the device NON_COMPLIANT");
        check(count(st, "\"reason\"") == 1 && st.contains("\"setting\":\"" + refused + "\"")
                && st.contains("\"ENFORCEMENT_FAILED\"") && st.contains("refused by the harness"),
            refused + " alone is ENFORCEMENT_FAILED, with the exception's message");
        boolean othersApplied = true;
        for (String name : names) {
            if (!dev.supports(name) || SAMPLES.get(name) == null) continue;
            String want = name.equals(refused) ? SAMPLES.get(name)[1] : SAMPLES.get(name)[3];
            if (!want.equals(dev.state(name))) {
                System.out.println("  " + name + ": stand-in has " + dev.state(name) + ", want " + want);
                othersApplied = false;
            }
        }
        check(othersApplied, "every other setting was applied; " + refused + " kept its value");
        dev.refuse = null;
        device.onPushMessage(push);
        check(field(status(did), "state").equals("COMPLIANT") && dev.state(refused).equals(SAMPLES.get(refused)[3]),
            "once the enforcer accepts " + refused + ", the device converges (COMPLIANT)");

        // 8. The app's Executor, Collector and Notifier through the bindings.
        JavaExecutor exec = new JavaExecutor();
        JavaCollector coll = new JavaCollector();
        JavaNotifier notes = new JavaNotifier();
        JavaStore pstore = new JavaStore();
        Config pc = config(enroll, true);
        pc.setExecutor(exec);
        pc.setCollector(coll);
        pc.setNotifier(notes);
        pc.setStateDir(java.nio.file.Files.createTempDirectory("doorbell-state").toString());
        Agent pixel = new Agent(pc, new JavaEnforcer(), pstore, log);
        pixel.sync();
        String pid = pixel.deviceID();

        String lockId = field(api("POST", "/devices/" + pid + "/commands", "{\"type\":\"lock\"}"), "commandId");
        String scriptId = field(api("POST", "/devices/" + pid + "/commands", "{\"type\":\"run_script\",\"params\":{\"script\":\"x\"}}"), "commandId");
        pixel.onPushMessage("{\"type\":\"command_pending\"}");
        String lockCmd = api("GET", "/commands/" + lockId, null);
        System.out.println("  lock command after the command doorbell: " + lockCmd);
        check(exec.calls().equals(List.of("lock {}")), "the Java executor ran the lock once: " + exec.calls());
        check(field(lockCmd, "state").equals("ACKNOWLEDGED") && lockCmd.contains("locked by the harness"),
            "the server says the lock is ACKNOWLEDGED, with the executor's output");
        String scriptCmd = api("GET", "/commands/" + scriptId, null);
        check(field(scriptCmd, "state").equals("ERROR") && field(scriptCmd, "errorCode").equals("unsupported"),
            "a type the executor does not support is ERROR unsupported: " + scriptCmd);
        check(pstore.get(Doorbell.CommandJournalKey).contains(lockId), "the command journal is kept in the Java Store");

        String inv = api("GET", "/devices/" + pid + "/inventory", null);
        System.out.println("  inventory: " + inv);
        check(coll.calls > 0 && inv.contains("\"securityPatch\":\"2026-10-05\"") && inv.contains("\"model\":\"Pixel 8\"")
                && inv.contains("\"versionCode\":609904333") && inv.contains("\"format\":\"android\""),
            "the Java collector's Android inventory is on the server");

        putPolicy(pid, "{\"cameraDisabled\": true, \"modes\": {\"cameraDisabled\": \"guided\"}, \"deadline\": \"72h\"}");
        pixel.onPushMessage(push);
        st = status(pid);
        System.out.println("  status with a guided setting: " + st);
        List<String> shown = notes.notices();
        check(shown.size() == 1 && shown.get(0).contains("cameraDisabled") && shown.get(0).contains("\"remediateBy\""),
            "the Java notifier was told what to fix and by when: " + shown);
        check(field(st, "state").equals("NON_COMPLIANT") && st.contains("\"PENDING_USER\"") && st.contains("\"remediateBy\""),
            "the server says PENDING_USER with remediateBy");

        // A wipe: reported first, then its deferred part runs once, through the bindings.
        exec.wipeId = field(api("POST", "/devices/" + pid + "/commands",
            "{\"type\":\"wipe\",\"params\":{\"keepFactoryResetProtection\":\"true\"}}"), "commandId");
        pixel.onPushMessage("{\"type\":\"command_pending\"}");
        check(exec.after().equals(List.of("wipe {\"keepFactoryResetProtection\":\"true\"} server:ACKNOWLEDGED")),
            "the wipe ran once through runAfterReport, with its params, after the server said ACKNOWLEDGED: " + exec.after());
        pixel.onPushMessage("{\"type\":\"command_pending\"}");
        check(exec.after().size() == 1 && pstore.get(Doorbell.AfterReportKey).isEmpty()
                && exec.calls().equals(List.of("lock {}", "wipe {\"keepFactoryResetProtection\":\"true\"}")),
            "nothing ran twice and nothing is left deferred in the Java Store: " + exec.calls());

        if (failures > 0) {
            System.out.println("HARNESS FAILED: " + failures + " check(s)");
            System.exit(1);
        }
        System.out.println("HARNESS OK");
        System.exit(0);
    }
}
