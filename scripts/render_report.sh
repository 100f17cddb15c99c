#!/usr/bin/env bash
# Renders a tpufi HTML report to a PNG with headless Chromium, to look at it for real.
# Usage: scripts/render_report.sh REPORT.html OUT.png [WIDTHxHEIGHT]   (default 1400x2400)
# Installs the Debian package `chromium` if no Chromium is found (as root, or with sudo).
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2; exit 2; fi
report=$1 out=$2 size=${3:-1400x2400}
[ -f "$report" ] || { echo "$0: no such file: $report" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "$0: installing chromium" >&2
  $SUDO apt-get update -qq >/dev/null || true
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
  browser=$(command -v chromium || command -v chromium-browser || true)
  [ -n "$browser" ] || { echo "$0: chromium could not be installed (apt-get install -y chromium)" >&2; exit 1; }
fi
abs=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
outabs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
# A throwaway profile: nothing of the user's browser is read or written.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --screenshot="$outabs" --window-size="${size/x/,}" "file://$abs" >/dev/null 2>&1
[ -s "$outabs" ] || { echo "$0: chromium wrote no screenshot" >&2; exit 1; }
echo "$outabs"
