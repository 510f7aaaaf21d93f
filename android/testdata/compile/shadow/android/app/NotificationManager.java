package android.app;

public class NotificationManager {
    NotificationManager() {}

    public static final int IMPORTANCE_MIN = 1; // API 24

    public void createNotificationChannel(NotificationChannel channel) { throw new RuntimeException("shadow"); } // API 26
}
