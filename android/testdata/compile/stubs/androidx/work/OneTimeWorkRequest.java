// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

public final class OneTimeWorkRequest extends WorkRequest {
    private OneTimeWorkRequest() {}

    public static final class Builder extends WorkRequest.Builder<Builder, OneTimeWorkRequest> {
        public Builder(Class<? extends ListenableWorker> workerClass) { throw new RuntimeException("stub"); }
    }
}
