// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

public interface Operation {}
