// Compile-only stub of firebase-common 21.0.0 (firebase-bom 33.1.2; see ../../../README.md).
package com.google.firebase;

import android.content.Context;
import java.util.List;

public class FirebaseApp {
    FirebaseApp() {}

    public static List<FirebaseApp> getApps(Context context) { throw new RuntimeException("stub"); }
}
