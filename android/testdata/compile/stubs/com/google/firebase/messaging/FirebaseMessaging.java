// Compile-only stub of firebase-messaging 24.0.0 (firebase-bom 33.1.2; see ../../../../README.md).
package com.google.firebase.messaging;

import com.google.android.gms.tasks.Task;

public class FirebaseMessaging {
    FirebaseMessaging() {}

    public static synchronized FirebaseMessaging getInstance() { throw new RuntimeException("stub"); }

    public Task<String> getToken() { throw new RuntimeException("stub"); }
}
