#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding real binaries
# with real C libraries copied or statically linked in, for the
# embedded_libraries collector's tests. Every library is Debian's own: its
# static archive from the -dev package, linked by Debian's gcc, or its shared
# object copied as installed.
#   /usr/local/bin/ssl-static     OpenSSL's libcrypto.a (libssl-dev), glibc static
#   /usr/local/bin/zlib-static    zlib's libz.a (zlib1g-dev)
#   /usr/local/bin/sqlite-static  SQLite's libsqlite3.a (libsqlite3-dev)
#   /usr/local/bin/png-static     libpng16.a and libz.a (libpng-dev, zlib1g-dev)
#   /usr/local/bin/expat-static   libexpat.a (libexpat1-dev)
#   /usr/local/bin/ssl-dynamic    links libcrypto.so.3 and prints OPENSSL_VERSION_TEXT: OpenSSL's banner from
#                                 its headers, not its code (nothing is embedded)
#   /usr/local/bin/plain-static   glibc static and nothing else (nothing identifies it)
#   /usr/local/bin/tool.sh        an executable shell script (not ELF)
#   /usr/local/lib/glibc/libc.so.6       Debian's libc.so.6 (libc6), copied
#   /usr/local/musl/lib/libc.so          Debian's musl libc.so (musl), copied
#   /opt/vendor/bin/fat-static    libcrypto.a, libz.a, libsqlite3.a and libexpat.a in one binary
#   /opt/vendor/bin/xml-app       libxml2.a (libxml2-dev) static, ICU and the rest dynamic
#   /opt/vendor/bin/curl-app      libcurl.a (libcurl4-openssl-dev) static, its dependencies dynamic
#   /opt/vendor/lib/libcrypto.so.3       Debian's libcrypto.so.3 (libssl3, libssl3t64 since Debian 13), copied
#   /app/bin/busybox              Debian's busybox-static binary, copied
#   /usr/lib/<multiarch>/libcrypto.so.3 and /usr/bin/openssl, owned by the packages that own them here
#                                 (dpkg -S), through this machine's own dpkg status stanzas and file lists
# Cached outside the clone; the stamp names the packages' versions, so an upgrade rebuilds it.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
# The multiarch triplet (x86_64-linux-gnu, aarch64-linux-gnu) and the packages owning OpenSSL's
# libcrypto.so.3 and command here: libssl3, or libssl3t64 since Debian 13's 64-bit time_t transition.
multiarch="$( (dpkg-architecture -qDEB_HOST_MULTIARCH || gcc -print-multiarch) 2>/dev/null || true)"
lib="/usr/lib/$multiarch"
owner() { dpkg -S "$1" 2>/dev/null | sed -n '1s/[:,].*//p'; }
ssl_pkg="$(owner "$lib/libcrypto.so.3")"
openssl_pkg="$(owner /usr/bin/openssl)"
[[ -n "$multiarch" && -n "$ssl_pkg" && -n "$openssl_pkg" ]] || {
  echo "embedded-fixtures: no package owns $lib/libcrypto.so.3 or /usr/bin/openssl (scripts/install-test-deps.sh installs libssl-dev and openssl)" >&2
  exit 1
}
pkgs=(gcc libc6 libc6-dev libssl-dev "$ssl_pkg" "$openssl_pkg" zlib1g-dev libsqlite3-dev libpng-dev libxml2-dev
  libexpat1-dev libcurl4-openssl-dev busybox-static musl)
versions="$(dpkg-query -W -f='${Package}=${Version} ' "${pkgs[@]}" 2>/dev/null || true)"
want="v2 $versions"
dir="$cache/embedded"
root="$dir/root"
stamp="$dir/root.ok"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
for p in "${pkgs[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] ||
    { echo "embedded-fixtures: $p is missing (scripts/install-test-deps.sh installs it)" >&2; exit 1; }
done
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp" "$dir/work"
work="$dir/work"
mkdir -p "$work" "$root/usr/local/bin" "$root/usr/local/lib/glibc" "$root/usr/local/musl/lib" \
  "$root/opt/vendor/bin" "$root/opt/vendor/lib" "$root/app/bin" "$root/usr/bin" "$root$lib" \
  "$root/var/lib/dpkg/info"
cd "$work"

# Each program calls its library's own version function, as programs that report what they run on do,
# and uses the library: a program that only calls zlibVersion() links none of zlib's deflate or inflate
# code, and carries no zlib banner (only the bare "1.2.13", which is not evidence).
cat > ssl.c <<'C'
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
int main(void) {
    unsigned char md[32]; unsigned int n;
    EVP_Digest("x", 1, md, &n, EVP_sha256(), NULL);
    printf("%s %u\n", OpenSSL_version(OPENSSL_VERSION), n);
    return 0;
}
C
cat > ssl-dynamic.c <<'C'
#include <openssl/crypto.h>
#include <stdio.h>
int main(void) { printf("built with %s, running %s\n", OPENSSL_VERSION_TEXT, OpenSSL_version(OPENSSL_VERSION)); return 0; }
C
cat > z.c <<'C'
#include <zlib.h>
#include <stdio.h>
int main(void) {
    unsigned char out[128], back[64]; uLongf n = sizeof out, m = sizeof back;
    compress(out, &n, (const Bytef *)"hello hello hello", 17);
    uncompress(back, &m, out, n);
    printf("%s %lu\n", zlibVersion(), m);
    return 0;
}
C
cat > sqlite.c <<'C'
#include <sqlite3.h>
#include <stdio.h>
int main(void) {
    sqlite3 *db; sqlite3_open(":memory:", &db);
    sqlite3_exec(db, "create table t(x)", 0, 0, 0);
    printf("%s\n", sqlite3_libversion());
    sqlite3_close(db);
    return 0;
}
C
cat > png.c <<'C'
#include <png.h>
#include <stdio.h>
int main(void) {
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, 0, 0, 0);
    printf("%s\n", png_get_libpng_ver(p));
    png_destroy_read_struct(&p, 0, 0);
    return 0;
}
C
cat > expat.c <<'C'
#include <expat.h>
#include <stdio.h>
int main(void) {
    XML_Parser p = XML_ParserCreate(0);
    XML_Parse(p, "<a/>", 4, 1);
    printf("%s\n", XML_ExpatVersion());
    XML_ParserFree(p);
    return 0;
}
C
cat > xml.c <<'C'
#include <libxml/parser.h>
#include <stdio.h>
int main(void) {
    LIBXML_TEST_VERSION;
    xmlDocPtr d = xmlReadMemory("<a/>", 4, "x.xml", 0, 0);
    printf("%s %d\n", xmlParserVersion, d != 0);
    xmlFreeDoc(d);
    return 0;
}
C
cat > curl.c <<'C'
#include <curl/curl.h>
#include <stdio.h>
int main(void) { CURL *c = curl_easy_init(); printf("%s\n", curl_version()); curl_easy_cleanup(c); return 0; }
C
cat > fat.c <<'C'
#include <expat.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <zlib.h>
int main(void) {
    unsigned char out[64]; uLongf n = sizeof out;
    compress(out, &n, (const Bytef *)"fat", 3);
    XML_Parser p = XML_ParserCreate(0);
    printf("%s %s %s %s\n", OpenSSL_version(OPENSSL_VERSION), zlibVersion(), sqlite3_libversion(), XML_ExpatVersion());
    XML_ParserFree(p);
    return 0;
}
C
echo 'int main(void) { return 0; }' > plain.c
# glibc's static getaddrinfo and dlopen warnings are expected: these programs never call them.
cc() { gcc -O2 "$@" 2> >(grep -v -e 'warning: Using' -e 'in function' -e 'statically linked applications' >&2); }
cc -static -o "$root/usr/local/bin/ssl-static" ssl.c -lcrypto -lpthread
cc -o "$root/usr/local/bin/ssl-dynamic" ssl-dynamic.c -lcrypto
cc -static -o "$root/usr/local/bin/zlib-static" z.c -lz
cc -static -o "$root/usr/local/bin/sqlite-static" sqlite.c -lsqlite3 -lm
cc -static -o "$root/usr/local/bin/png-static" png.c -lpng16 -lz -lm
cc -static -o "$root/usr/local/bin/expat-static" expat.c -lexpat
cc -static -o "$root/usr/local/bin/plain-static" plain.c
cc -static -o "$root/opt/vendor/bin/fat-static" fat.c -lexpat -lcrypto -lsqlite3 -lz -lm -lpthread
# Debian ships no static ICU data worth linking: libxml2 static, what it needs as shared objects.
cc -o "$root/opt/vendor/bin/xml-app" xml.c $(pkg-config --cflags libxml-2.0) \
  -Wl,-Bstatic -lxml2 -Wl,-Bdynamic -licuuc -llzma -lz -lm
# libcurl's static archive, its dependencies (some without static archives: GSSAPI, LDAP) as shared objects.
cc -o "$root/opt/vendor/bin/curl-app" curl.c -Wl,-Bstatic -lcurl -Wl,-Bdynamic \
  $(for l in $(pkg-config --static --libs-only-l libcurl); do
      [[ "$l" == -lcurl ]] && continue
      for f in "$lib/lib${l#-l}.so" "$lib/lib${l#-l}"[.-]*so*; do [[ -e "$f" ]] && { echo "-l:${f##*/}"; break; }; done
    done | sort -u)
printf '#!/bin/sh\necho tool\n' > "$root/usr/local/bin/tool.sh"
chmod 755 "$root/usr/local/bin/tool.sh"

# Copies of Debian's own libraries and busybox, as vendors ship them beside their programs.
cp -L "$lib/libc.so.6" "$root/usr/local/lib/glibc/libc.so.6"
musl_libc="$(dpkg -L musl | sed -n '/\/libc\.so$/{p;q}')"
cp -L "$musl_libc" "$root/usr/local/musl/lib/libc.so"
cp -L "$lib/libcrypto.so.3" "$root/opt/vendor/lib/libcrypto.so.3"
busybox="$(dpkg -L busybox-static | sed -n '/\/busybox$/{p;q}')"
cp -L "$busybox" "$root/app/bin/busybox"

# Package-owned files: libssl3's libcrypto.so.3 and openssl's /usr/bin/openssl, with this
# machine's own dpkg status stanzas and file lists for the two packages.
cp -L "$lib/libcrypto.so.3" "$root$lib/libcrypto.so.3"
cp -L /usr/bin/openssl "$root/usr/bin/openssl"
dpkg-query -s "$ssl_pkg" "$openssl_pkg" > "$root/var/lib/dpkg/status"
for list in /var/lib/dpkg/info/{"$ssl_pkg","$openssl_pkg"}{,:*}.list; do
  [[ -f "$list" ]] && cp "$list" "$root/var/lib/dpkg/info/"
done

cd /
rm -rf "$work"
printf '%s' "$want" > "$stamp"
echo "$root"
