// Compile-only stub of androidx.work:work-runtime 2.9.1 (see ../../README.md).
package androidx.work;

public enum NetworkType { NOT_REQUIRED, CONNECTED, UNMETERED, NOT_ROAMING, METERED, TEMPORARILY_UNMETERED }
