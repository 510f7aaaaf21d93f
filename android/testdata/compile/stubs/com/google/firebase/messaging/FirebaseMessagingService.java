// Compile-only stub of firebase-messaging 24.0.0 (firebase-bom 33.1.2; see ../../../../README.md).
// The real class extends com.google.firebase.messaging.EnhancedIntentService,
// a Service; the app only overrides these two callbacks.
package com.google.firebase.messaging;

import android.app.Service;
import android.content.Intent;
import android.os.IBinder;

public class FirebaseMessagingService extends Service {
    public FirebaseMessagingService() { throw new RuntimeException("stub"); }

    public void onMessageReceived(RemoteMessage message) { throw new RuntimeException("stub"); }

    public void onNewToken(String token) { throw new RuntimeException("stub"); }

    @Override public final IBinder onBind(Intent intent) { throw new RuntimeException("stub"); }
}
