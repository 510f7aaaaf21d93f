#!/bin/sh
# Fetches, once, what the app's compile check (android/compile_test.go) needs
# into a cache outside the tree, and prints where it is:
#
#   KOTLINC=<cache>/kotlin-<version>/node_modules/kotlin-compiler/bin/kotlinc
#   ANDROID_JAR=<cache>/android-23/usr/share/java/com.android.android-23.jar
#
# Usage: fetch.sh KOTLIN_VERSION
#
# - The Kotlin compiler comes from the npm package kotlin-compiler, at the
#   version the app's Gradle plugin names (the test reads it from
#   android/app/build.gradle.kts). Debian's own kotlin (1.3) is too old.
# - The API 23 android.jar comes from Debian's libandroid-23-java, which is in
#   Debian's sid and bullseye suites only. It is fetched with apt through a
#   private source list (its own state and cache directories) built from the
#   machine's own configured Debian mirror, read from /etc/apt at run time;
#   the system's apt configuration is not changed. The .deb's signature is
#   checked by apt against the system's Debian archive keyring.
#
# The cache is $DOORBELL_ANDROID_CACHE, or /var/cache/doorbell-android as root,
# or ${XDG_CACHE_HOME:-~/.cache}/doorbell-android. Each part is installed into
# a temporary directory and renamed into place, so an interrupted run leaves
# nothing half done; a second run finds both and downloads nothing.
set -eu

ver=${1:?usage: fetch.sh KOTLIN_VERSION}
case $ver in *[!0-9.]*|'') echo "fetch.sh: bad Kotlin version '$ver'" >&2; exit 2;; esac

cache=${DOORBELL_ANDROID_CACHE:-}
if [ -z "$cache" ]; then
  if [ "$(id -u)" = 0 ]; then cache=/var/cache/doorbell-android
  else cache=${XDG_CACHE_HOME:-$HOME/.cache}/doorbell-android; fi
fi
mkdir -p "$cache"
# One fetch at a time (two test runs may share the cache).
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
fi

# --- Kotlin, from npm ---------------------------------------------------------
kdir=$cache/kotlin-$ver
kotlinc=$kdir/node_modules/kotlin-compiler/bin/kotlinc
if [ ! -x "$kotlinc" ]; then
  command -v npm >/dev/null || { echo "fetch.sh: npm is needed for the Kotlin compiler (kotlin-compiler on npm)" >&2; exit 1; }
  tmp=$(mktemp -d "$cache/.kotlin-XXXXXX")
  echo "fetch.sh: npm install kotlin-compiler@$ver into $kdir" >&2
  if ! npm install --prefix "$tmp" --no-audit --no-fund --loglevel=error "kotlin-compiler@$ver" >&2; then
    rm -rf "$tmp"; exit 1
  fi
  got=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/node_modules/kotlin-compiler/package.json" | head -n 1)
  if [ "$got" != "$ver" ]; then
    echo "fetch.sh: npm installed kotlin-compiler $got, want $ver" >&2; rm -rf "$tmp"; exit 1
  fi
  chmod +x "$tmp"/node_modules/kotlin-compiler/bin/* 2>/dev/null || true
  rm -rf "$kdir"; mv "$tmp" "$kdir"
fi

# --- android.jar (API 23), from Debian's libandroid-23-java ------------------
adir=$cache/android-23
jar=$adir/usr/share/java/com.android.android-23.jar
if [ ! -s "$jar" ]; then
  # The machine's Debian mirror: the first URI ending in /debian in the
  # deb822 sources, else in a one-line sources.list entry.
  uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      uri=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\// && $i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
      [ -n "$uri" ] && break
    done
  fi
  [ -n "$uri" ] || { echo "fetch.sh: no Debian mirror (a URI ending in /debian) in /etc/apt/sources.list*" >&2; exit 1; }
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || { echo "fetch.sh: $keyring is missing (debian-archive-keyring)" >&2; exit 1; }

  apt=$cache/apt
  mkdir -p "$apt/lists/partial" "$apt/archives/partial"
  {
    echo "deb [signed-by=$keyring] $uri sid main"
    echo "deb [signed-by=$keyring] $uri bullseye main"
  } > "$apt/sources.list"
  set -- -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt" -o Dir::Cache::Archives="$apt/archives" \
    -o APT::Sandbox::User=root -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
    -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false -qq
  echo "fetch.sh: apt-get update (private source list: sid, bullseye from $uri)" >&2
  apt-get "$@" update >&2
  tmp=$(mktemp -d "$cache/.android-XXXXXX")
  (cd "$tmp" && apt-get "$@" download libandroid-23-java >&2)
  deb=$(ls "$tmp"/libandroid-23-java_*.deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || { echo "fetch.sh: apt-get download libandroid-23-java fetched nothing" >&2; rm -rf "$tmp"; exit 1; }
  mkdir "$tmp/root"
  dpkg-deb -x "$deb" "$tmp/root"
  [ -s "$tmp/root/usr/share/java/com.android.android-23.jar" ] || { echo "fetch.sh: $deb has no com.android.android-23.jar" >&2; rm -rf "$tmp"; exit 1; }
  rm -rf "$adir"; mv "$tmp/root" "$adir"; rm -rf "$tmp"
  rm -rf "$apt/lists" "$apt/archives" "$apt"/*.bin # the indexes are not needed again
fi

echo "KOTLINC=$kotlinc"
echo "ANDROID_JAR=$jar"
