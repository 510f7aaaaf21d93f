// Compile-only stub of play-services-tasks 18.1.0 (see ../../../../../README.md).
package com.google.android.gms.tasks;

public abstract class Task<TResult> {
    public Task() {}

    public abstract Task<TResult> addOnSuccessListener(OnSuccessListener<? super TResult> listener);
}
