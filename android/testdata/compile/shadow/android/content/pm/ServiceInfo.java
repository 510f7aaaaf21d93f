package android.content.pm;

public class ServiceInfo extends ComponentInfo implements android.os.Parcelable {
    public ServiceInfo() { throw new RuntimeException("shadow"); }

    public static final int FOREGROUND_SERVICE_TYPE_SPECIAL_USE = 1073741824; // API 34

    public int describeContents() { throw new RuntimeException("shadow"); }

    public void writeToParcel(android.os.Parcel dest, int parcelableFlags) { throw new RuntimeException("shadow"); }
}
