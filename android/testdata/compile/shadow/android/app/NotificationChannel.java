package android.app;

public final class NotificationChannel { // API 26
    public NotificationChannel(String id, CharSequence name, int importance) { throw new RuntimeException("shadow"); }
}
