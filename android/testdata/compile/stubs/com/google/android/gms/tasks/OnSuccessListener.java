// Compile-only stub of play-services-tasks 18.1.0 (see ../../../../../README.md).
package com.google.android.gms.tasks;

public interface OnSuccessListener<TResult> {
    void onSuccess(TResult result);
}
