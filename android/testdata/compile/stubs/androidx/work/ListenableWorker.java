// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

import android.content.Context;

public abstract class ListenableWorker {
    public ListenableWorker(Context appContext, WorkerParameters workerParams) { throw new RuntimeException("stub"); }

    public final Context getApplicationContext() { throw new RuntimeException("stub"); }

    public abstract static class Result {
        Result() {}

        public static Result success() { throw new RuntimeException("stub"); }

        public static Result retry() { throw new RuntimeException("stub"); }

        public static Result failure() { throw new RuntimeException("stub"); }
    }
}
