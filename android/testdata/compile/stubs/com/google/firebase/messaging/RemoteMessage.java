// Compile-only stub of firebase-messaging 24.0.0 (firebase-bom 33.1.2; see ../../../../README.md).
package com.google.firebase.messaging;

import java.util.Map;

public final class RemoteMessage {
    RemoteMessage() {}

    public Map<String, String> getData() { throw new RuntimeException("stub"); }
}
