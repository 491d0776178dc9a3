#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding real Java
# archives, for the java collector's tests:
# - Debian's own lib*-java packages (from the apt archive, `dpkg-deb -x`), with
#   dpkg status stanzas and file lists made from the .debs' own control data,
#   so dpkg ownership of /usr/share/java/*.jar is what dpkg would record. Most
#   jars carry META-INF/maven/**/pom.properties; jsch, jzlib and hamcrest only
#   a MANIFEST.MF (Bundle-* headers), hamcrest-integration not even that;
#   /usr/share/java/x.jar symlinks point at versioned files;
# - archives built here from those jars with the JDK's `jar` and Info-ZIP's
#   `zip`, the way build tools lay them out:
#     /app/app.jar            Spring Boot style: BOOT-INF/lib/*.jar stored (zip -0)
#     /app/app-exec.jar       the same behind a launch script (an executable jar)
#     /srv/www/shop.war       WEB-INF/lib/*.jar deflated
#     /opt/suite/suite.ear    the war plus lib/jsch.jar: jars two levels down
#     /opt/shaded/uber.jar    log4j-api, log4j-core and commons-lang3 merged into
#                             one jar (a shaded jar: three pom.properties)
# Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/java-apps"
stamp="$root.ok"
debs="liblog4j2-java libcommons-lang3-java libcommons-io-java libslf4j-java libjackson2-core-java
libjackson2-databind-java libjackson2-annotations-java libjsch-java libjzlib-java libhamcrest-java"
debs="$(echo $debs)"
want="v1 $debs"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$root"; exit 0
fi
for tool in jar zip dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "java-fixture: $tool is not installed" >&2; exit 1; }
done
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.java-lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/etc"
: > "$root/var/lib/dpkg/status"
echo 'ID=debian' > "$root/etc/os-release"

echo "java-fixture: apt-get download $debs" >&2
# shellcheck disable=SC2086  # $debs is a list of packages
(cd "$work" && { apt-get download -q $debs >&2 || { apt-get update -qq >&2 && apt-get download -q $debs >&2; }; })
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$root"
  name="$(dpkg-deb -f "$deb" Package)"
  { echo "Package: $name"; echo "Status: install ok installed"
    dpkg-deb -f "$deb" | grep -v '^Package:'; echo; } >> "$root/var/lib/dpkg/status"
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' \
    > "$root/var/lib/dpkg/info/$name.list"
done
java="$root/usr/share/java"

echo "java-fixture: building a Spring Boot style jar, a war, an ear and a shaded jar" >&2
mkdir -p "$root/app" "$root/srv/www" "$root/opt/suite" "$root/opt/shaded"
# Spring Boot: the application's classes under BOOT-INF/classes, its libraries stored whole under BOOT-INF/lib.
boot="$work/boot"
mkdir -p "$boot/BOOT-INF/lib" "$boot/BOOT-INF/classes"
cp "$java/log4j-core.jar" "$boot/BOOT-INF/lib/log4j-core-2.19.0.jar"
cp "$java/log4j-api.jar" "$boot/BOOT-INF/lib/log4j-api-2.19.0.jar"
cp "$java/jackson-databind.jar" "$boot/BOOT-INF/lib/jackson-databind-2.14.0.jar"
cp "$java/jzlib-1.1.3.jar" "$boot/BOOT-INF/lib/"
echo 'greeting=hello' > "$boot/BOOT-INF/classes/application.properties"
(cd "$boot" && jar --create --file "$root/app/app.jar" BOOT-INF/classes && zip -q -0 -r "$root/app/app.jar" BOOT-INF/lib)
printf '#!/bin/sh\nexec java -jar "$0" "$@"\nexit 0\n' > "$work/launch.sh"
cat "$work/launch.sh" "$root/app/app.jar" > "$root/app/app-exec.jar"
# A war: WEB-INF/lib deflated, as maven-war-plugin writes it.
war="$work/war"
mkdir -p "$war/WEB-INF/lib"
cp "$java/commons-lang3.jar" "$war/WEB-INF/lib/commons-lang3-3.12.0.jar"
cp "$java/commons-io.jar" "$war/WEB-INF/lib/commons-io-2.11.0.jar"
cp "$java/slf4j-api.jar" "$war/WEB-INF/lib/slf4j-api-1.7.32.jar"
echo '<web-app/>' > "$war/WEB-INF/web.xml"
(cd "$war" && jar --create --file "$root/srv/www/shop.war" .)
# An ear: the war and a library, both deflated.
ear="$work/ear"
mkdir -p "$ear/lib"
cp "$root/srv/www/shop.war" "$ear/"
cp "$java/jsch-0.1.54.jar" "$ear/lib/"
(cd "$ear" && jar --create --file "$root/opt/suite/suite.ear" .)
# A shaded jar: three libraries' contents merged, each keeping its META-INF/maven.
shade="$work/shade"
mkdir -p "$shade"
for j in log4j-api log4j-core commons-lang3; do (cd "$shade" && unzip -q -o "$java/$j.jar" -x META-INF/MANIFEST.MF); done
(cd "$shade" && jar --create --file "$root/opt/shaded/uber.jar" .)
printf '%s' "$want" > "$stamp"
echo "$root"
