// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

import java.util.concurrent.TimeUnit;

public abstract class WorkRequest {
    WorkRequest() {}

    public abstract static class Builder<B extends Builder<B, ?>, W extends WorkRequest> {
        Builder() {}

        public final B setBackoffCriteria(BackoffPolicy backoffPolicy, long backoffDelay, TimeUnit timeUnit) { throw new RuntimeException("stub"); }

        public final B setConstraints(Constraints constraints) { throw new RuntimeException("stub"); }

        public B setExpedited(OutOfQuotaPolicy policy) { throw new RuntimeException("stub"); }

        public final W build() { throw new RuntimeException("stub"); }
    }
}
