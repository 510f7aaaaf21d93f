plugins {
    id("com.android.application") version "8.5.2"
    id("org.jetbrains.kotlin.android") version "1.9.24"
    id("com.google.gms.google-services") version "4.4.2" apply false
}

// Firebase needs the project's google-services.json; without it the app
// builds and runs without FCM (WorkManager's periodic sync still works).
if (file("google-services.json").exists()) {
    apply(plugin = "com.google.gms.google-services")
}

fun prop(name: String): String = (findProperty(name) as String?) ?: ""

android {
    namespace = "org.doorbellmdm.agent"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.doorbellmdm.agent"
        minSdk = 26
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("String", "SERVER_URL", "\"${prop("doorbellServerUrl")}\"")
        buildConfigField("String", "ENROLL_TOKEN", "\"${prop("doorbellEnrollToken")}\"")
        buildConfigField("boolean", "KIOSK", prop("doorbellKiosk").ifEmpty { "false" })
    }

    buildFeatures {
        buildConfig = true
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

dependencies {
    // The Go agent: `make aar` at the repository root writes it here.
    implementation(files("libs/doorbell.aar"))
    implementation("androidx.core:core-ktx:1.13.1")
    implementation("androidx.work:work-runtime-ktx:2.9.1")
    implementation(platform("com.google.firebase:firebase-bom:33.1.2"))
    implementation("com.google.firebase:firebase-messaging")
}
