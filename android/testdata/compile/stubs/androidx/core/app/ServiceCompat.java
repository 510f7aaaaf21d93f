// Compile-only stub of androidx.core:core 1.13.1 (see ../../../README.md).
package androidx.core.app;

import android.app.Notification;
import android.app.Service;

public final class ServiceCompat {
    private ServiceCompat() {}

    public static void startForeground(Service service, int id, Notification notification, int foregroundServiceType) { throw new RuntimeException("stub"); }
}
