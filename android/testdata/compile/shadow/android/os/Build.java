package android.os;

/** Build.getSerial (API 26) for the inventory's serial number; the rest as in android.jar. */
public class Build {
    public static final String UNKNOWN = "unknown";
    public static final String MANUFACTURER = field();
    public static final String MODEL = field();
    public static final String FINGERPRINT = field();
    public static final String[] SUPPORTED_ABIS = null;

    public static String getSerial() { throw new RuntimeException("shadow"); } // API 26

    public static class VERSION {
        public static final String RELEASE = field();
        public static final String SECURITY_PATCH = field();
        public static final int SDK_INT = Integer.parseInt("0");
    }

    /** Not a compile-time constant, like android.jar's fields read from system properties. */
    private static String field() { return null; }
}
