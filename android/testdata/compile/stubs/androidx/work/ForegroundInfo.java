// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

import android.app.Notification;

public final class ForegroundInfo {
    public ForegroundInfo(int notificationId, Notification notification) { throw new RuntimeException("stub"); }

    public ForegroundInfo(int notificationId, Notification notification, int foregroundServiceType) { throw new RuntimeException("stub"); }
}
