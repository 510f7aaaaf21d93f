// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

public final class Constraints {
    private Constraints() {}

    public static final class Builder {
        public Builder() { throw new RuntimeException("stub"); }

        public Builder setRequiredNetworkType(NetworkType networkType) { throw new RuntimeException("stub"); }

        public Constraints build() { throw new RuntimeException("stub"); }
    }
}
