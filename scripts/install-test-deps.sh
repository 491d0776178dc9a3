#!/usr/bin/env bash
# Installs the Debian packages the tests use as real components, when missing:
# debootstrap (Debian root filesystems), rpm (rpmbuild and rpm, to build real
# rpm databases), python3-rpm (rpm's own version comparison, as an oracle) and
# python3-seccomp (to run the agent where seccomp refuses openat2),
# fuse-overlayfs (a real FUSE filesystem to freeze under a crawl), openssl
# (certificates for the TLS tests), psql (the Postgres front's client),
# chromium (headless, to load and screenshot the HTML compliance report) and
# script (a real terminal for the CLI's progress display), golang-go (to build a
# real Go binary whose embedded module build info the agent reads), binutils
# (objcopy, to add and rename ELF sections in fixtures), a JDK and zip/unzip (to
# build and read real jars, wars and ears) and libmaven3-core-java (Maven's own
# ComparableVersion, the oracle for Maven version ordering) and ruby (Gem::Version,
# the oracle for RubyGems version ordering) and composer (to install real PHP
# packages, and its `composer show` as the oracle) and curl (an upstream source
# tarball from Debian's archive for the Composer fixture), gcc, pkg-config and
# the -dev packages of OpenSSL, zlib, SQLite, libpng, libxml2, expat and libcurl,
# busybox-static and musl (real binaries with those libraries linked statically
# or copied in, for the embedded_libraries fixture).
set -euo pipefail
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v rpmbuild >/dev/null || need+=(rpm)
/usr/bin/python3 -c 'import rpm' 2>/dev/null || need+=(python3-rpm)
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || need+=(python3-seccomp)
command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
command -v openssl >/dev/null || need+=(openssl)
command -v psql >/dev/null || need+=(postgresql-client)
command -v chromium >/dev/null || need+=(chromium)
command -v script >/dev/null || need+=(bsdutils)
command -v go >/dev/null || need+=(golang-go)
command -v objcopy >/dev/null || need+=(binutils)
command -v jar >/dev/null || need+=(default-jdk-headless)
command -v zip >/dev/null || need+=(zip)
command -v unzip >/dev/null || need+=(unzip)
[[ -f /usr/share/java/maven-artifact-3.x.jar ]] || need+=(libmaven3-core-java)
command -v ruby >/dev/null || need+=(ruby)
command -v composer >/dev/null || need+=(composer php-cli)
command -v curl >/dev/null || need+=(curl)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
# openssl by name too: the embedded fixture copies its /usr/bin/openssl with its dpkg records (an openssl
# command from elsewhere on PATH is not the package), beside the libcrypto.so.3 libssl-dev pulls in.
for p in openssl libssl-dev zlib1g-dev libsqlite3-dev libpng-dev libxml2-dev libexpat1-dev libcurl4-openssl-dev \
  busybox-static musl; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || need+=("$p")
done
if ((${#need[@]})); then
  echo "install-test-deps: apt-get install ${need[*]}" >&2
  log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2; exit 1
  fi
  rm -f "$log"
fi
