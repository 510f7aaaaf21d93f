// Compile-only stub of androidx.core:core 1.13.1 (see ../../../README.md).
package androidx.core.app;

import android.app.Notification;
import android.content.Context;

public class NotificationCompat {
    public static final int PRIORITY_MIN = -2;

    NotificationCompat() {}

    public static class Builder {
        public Builder(Context context, String channelId) { throw new RuntimeException("stub"); }

        public Builder setSmallIcon(int icon) { throw new RuntimeException("stub"); }

        public Builder setContentTitle(CharSequence title) { throw new RuntimeException("stub"); }

        public Builder setOngoing(boolean ongoing) { throw new RuntimeException("stub"); }

        public Builder setPriority(int pri) { throw new RuntimeException("stub"); }

        public Notification build() { throw new RuntimeException("stub"); }
    }
}
