// Compile-only stub of androidx.core:core 1.13.1 (see ../../../README.md).
package androidx.core.content;

import android.content.Context;
import android.content.Intent;

public class ContextCompat {
    protected ContextCompat() {}

    public static void startForegroundService(Context context, Intent intent) { throw new RuntimeException("stub"); }
}
