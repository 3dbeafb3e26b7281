#!/usr/bin/env bash
# Build the Windows installer from a PyInstaller bundle with NSIS (makensis 3):
#   installers/windows/build-installer.sh [BUNDLE_DIR] [OUT_DIR] [VERSION]
# Defaults: dist/campus-portal, dist, the version in pyproject.toml. Produces
# OUT_DIR/campus-portal-<version>-windows-x64-setup.exe and adds it to OUT_DIR/SHA256SUMS.
# Runs on Windows (Git Bash, NSIS from Chocolatey) and on Linux (Debian package nsis), where the
# tests compile it around a stand-in payload.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUNDLE="${1:-$ROOT/dist/campus-portal}"
OUT="${2:-$ROOT/dist}"
VERSION="${3:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -1)}"
[ -n "$VERSION" ] || { echo "error: no version" >&2; exit 1; }
[ -f "$BUNDLE/campus-portal.exe" ] || { echo "error: no campus-portal.exe in $BUNDLE" >&2; exit 1; }
MAKENSIS="$(command -v makensis || command -v makensis.exe || true)"
if [ -z "$MAKENSIS" ] && [ -x "/c/Program Files (x86)/NSIS/makensis.exe" ]; then
  MAKENSIS="/c/Program Files (x86)/NSIS/makensis.exe"
fi
[ -n "$MAKENSIS" ] || { echo "error: makensis not found (Debian: apt-get install nsis)" >&2; exit 1; }

# The version resource wants four numbers: 1.2.3rc1 -> 1.2.3.0
NUMERIC="$(echo "$VERSION" | grep -oE '^[0-9]+(\.[0-9]+){0,3}')"
while [ "$(echo "$NUMERIC" | tr -cd . | wc -c)" -lt 3 ]; do NUMERIC="$NUMERIC.0"; done

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BUNDLE="$(cd "$BUNDLE" && pwd)"
SETUP="campus-portal-$VERSION-windows-x64-setup.exe"
if [ -n "${WINDIR:-}" ] && command -v cygpath >/dev/null; then  # makensis.exe wants Windows paths
  BUNDLE_ARG="$(cygpath -w "$BUNDLE")"
  OUT_ARG="$(cygpath -w "$OUT/$SETUP")"
  SCRIPT="$(cygpath -w "$ROOT/installers/windows/campus-portal.nsi")"
  FLAG=/
else
  BUNDLE_ARG="$BUNDLE"
  OUT_ARG="$OUT/$SETUP"
  SCRIPT="$ROOT/installers/windows/campus-portal.nsi"
  FLAG=-
fi
"$MAKENSIS" -V2 -WX "${FLAG}DVERSION=$VERSION" "${FLAG}DFILE_VERSION=$NUMERIC" \
  "${FLAG}DSOURCE_DIR=$BUNDLE_ARG" "${FLAG}DOUT_FILE=$OUT_ARG" "$SCRIPT"

cd "$OUT"
touch SHA256SUMS
grep -v " $SETUP\$" SHA256SUMS >SHA256SUMS.new || true
sha256sum "$SETUP" >>SHA256SUMS.new
mv SHA256SUMS.new SHA256SUMS
echo "Built $OUT/$SETUP"
