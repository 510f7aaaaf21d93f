package android.app;

import android.content.Context;

/** Only what the app builds: a plain Notification (GuidedNotifier), no NotificationCompat. */
public class Notification implements android.os.Parcelable {
    public static final String CATEGORY_REMINDER = "reminder";

    public int describeContents() { throw new RuntimeException("shadow"); }
    public void writeToParcel(android.os.Parcel parcel, int flags) { throw new RuntimeException("shadow"); }

    public static class Builder {
        public Builder(Context context, String channelId) { throw new RuntimeException("shadow"); } // API 26
        public Builder setSmallIcon(int icon) { throw new RuntimeException("shadow"); }
        public Builder setContentTitle(CharSequence title) { throw new RuntimeException("shadow"); }
        public Builder setContentText(CharSequence text) { throw new RuntimeException("shadow"); }
        public Builder setContentIntent(PendingIntent intent) { throw new RuntimeException("shadow"); }
        public Builder setOnlyAlertOnce(boolean onlyAlertOnce) { throw new RuntimeException("shadow"); }
        public Builder setAutoCancel(boolean autoCancel) { throw new RuntimeException("shadow"); }
        public Builder setCategory(String category) { throw new RuntimeException("shadow"); }
        public Builder setStyle(Style style) { throw new RuntimeException("shadow"); }
        public Builder setTimeoutAfter(long durationMs) { throw new RuntimeException("shadow"); } // API 26
        public Notification build() { throw new RuntimeException("shadow"); }
    }

    public abstract static class Style {
    }

    public static class BigTextStyle extends Style {
        public BigTextStyle() { throw new RuntimeException("shadow"); }
        public BigTextStyle bigText(CharSequence text) { throw new RuntimeException("shadow"); }
    }
}
