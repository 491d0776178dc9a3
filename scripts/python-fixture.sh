#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding Python packages
# as they are really installed, for the python collector's tests:
#  - wheels from PyPI installed by pip with --target into /usr/local/lib/python3.11/site-packages
#    (dist-info directories, as an official python image has them);
#  - a virtualenv at /app/venv made by `python -m venv`, with an application's wheels
#    installed by its own pip (plus the pip and setuptools venv puts there);
#  - Debian's own python3-requests and python3-urllib3 unpacked with dpkg-deb -x
#    (egg-info directories under /usr/lib/python3/dist-packages), with the dpkg
#    status stanzas and file lists dpkg would have written for them.
# Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/python-apps"
stamp="$root.ok"
target_wheels="requests==2.31.0 urllib3==2.0.7 certifi==2023.7.22 idna==3.4 charset-normalizer==3.3.2 typing_extensions==4.8.0 zope.interface==6.1"
venv_wheels="flask==3.0.0 werkzeug==3.0.1 jinja2==3.1.2 markupsafe==2.1.3 itsdangerous==2.1.2 click==8.1.7 blinker==1.7.0"
debs="python3-requests python3-urllib3"
want="v1|$target_wheels|$venv_wheels|$debs"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$root"; exit 0
fi
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.python-apps.lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
mkdir -p "$root"
py="${PYTHON:-python3}"
echo "python-fixture: pip install --target into $root/usr/local" >&2
# shellcheck disable=SC2086  # lists of requirements
"$py" -m pip install -q --disable-pip-version-check --no-deps --no-compile \
  --target "$root/usr/local/lib/python3.11/site-packages" $target_wheels >&2
echo "python-fixture: virtualenv at $root/app/venv" >&2
"$py" -m venv "$root/app/venv"
# shellcheck disable=SC2086
"$root/app/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-compile $venv_wheels >&2
echo "python-fixture: Debian's $debs, unpacked" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
(cd "$tmp" && { apt-get download -q $debs >&2 2>/dev/null || { apt-get update -qq >&2 && apt-get download -q $debs >&2; }; })
mkdir -p "$root/var/lib/dpkg/info"
: > "$root/var/lib/dpkg/status"
for deb in "$tmp"/*.deb; do
  dpkg-deb -x "$deb" "$root"
  pkg="$(dpkg-deb -f "$deb" Package)"
  # The stanza dpkg writes on install: the control fields with Status after Package.
  dpkg-deb -f "$deb" | awk '{print} /^Package:/ {print "Status: install ok installed"}' >> "$root/var/lib/dpkg/status"
  echo >> "$root/var/lib/dpkg/status"
  # The file list dpkg writes: every path of the data archive, "/." for its top.
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' > "$root/var/lib/dpkg/info/$pkg.list"
done
printf '%s' "$want" > "$stamp"
echo "$root"
