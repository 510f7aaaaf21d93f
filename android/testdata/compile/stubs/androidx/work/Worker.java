// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

import android.content.Context;

public abstract class Worker extends ListenableWorker {
    public Worker(Context context, WorkerParameters workerParams) { super(context, workerParams); }

    public abstract ListenableWorker.Result doWork();

    /** Expedited work before Android 12 needs it: the default throws IllegalStateException. */
    public ForegroundInfo getForegroundInfo() { throw new RuntimeException("stub"); }
}
