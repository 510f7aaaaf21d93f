package android.app;

public class NotificationManager {
    NotificationManager() {}

    public static final int IMPORTANCE_MIN = 1; // API 24
    public static final int IMPORTANCE_HIGH = 4; // API 24

    public void notify(int id, Notification notification) { throw new RuntimeException("shadow"); }
    public boolean areNotificationsEnabled() { throw new RuntimeException("shadow"); } // API 24

    public void createNotificationChannel(NotificationChannel channel) { throw new RuntimeException("shadow"); } // API 26
}
