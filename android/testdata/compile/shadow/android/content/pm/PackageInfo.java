package android.content.pm;

/** PackageInfo.getLongVersionCode (API 28) for the inventory's version codes. */
public class PackageInfo implements android.os.Parcelable {
    public String packageName;
    public String versionName;
    public int versionCode;

    public long getLongVersionCode() { throw new RuntimeException("shadow"); } // API 28

    public int describeContents() { throw new RuntimeException("shadow"); }
    public void writeToParcel(android.os.Parcel dest, int parcelableFlags) { throw new RuntimeException("shadow"); }
}
