#!/usr/bin/env bash
# Build the macOS installer package (for MDM or `sudo installer -pkg ... -target /`) from the
# .app that `pyinstaller build.spec` makes on macOS (dist/Campus Portal.app):
#
#   installers/macos/build-pkg.sh [--app PATH] [--out DIR] [--server-url URL]
#       [--enrolment-code CODE] [--update-check true|false] [--idle-logout-minutes N]
#       [--sign "Developer ID Installer: ..."]
#
# The preset options are baked into the package (scripts/postinstall writes them to
# /Library/Application Support/campus-portal/config.toml); an MDM configuration profile for
# the domain edu.campus-portal.desktop overrides them at install time. Produces
# OUT/campus-portal-<version>-macos.pkg and adds it to OUT/SHA256SUMS. Needs macOS
# (pkgbuild, productbuild).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/installers/macos"
APP="$ROOT/dist/Campus Portal.app"
OUT="$ROOT/dist"
SIGN=""
PRESET=()
while [ $# -gt 0 ]; do
  case "$1" in
    --app) APP="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --sign) SIGN="$2"; shift 2 ;;
    --server-url) PRESET+=("SERVER_URL=$2"); shift 2 ;;
    --enrolment-code) PRESET+=("ENROLMENT_CODE=$2"); shift 2 ;;
    --update-check) PRESET+=("UPDATE_CHECK=$2"); shift 2 ;;
    --idle-logout-minutes) PRESET+=("IDLE_LOGOUT_MINUTES=$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$APP" ] || { echo "error: no app at $APP (run pyinstaller build.spec on macOS)" >&2; exit 1; }
VERSION="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$APP/Contents/Info.plist")"
case "$(uname -m)" in arm64) ARCHS=arm64 ;; *) ARCHS=x86_64 ;; esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root/Applications" "$WORK/scripts" "$OUT"
ditto "$APP" "$WORK/root/Applications/Campus Portal.app"
cp "$HERE/scripts/postinstall" "$WORK/scripts/postinstall"
chmod 755 "$WORK/scripts/postinstall"
if [ ${#PRESET[@]} -gt 0 ]; then
  for line in "${PRESET[@]}"; do
    printf '%s=%q\n' "${line%%=*}" "${line#*=}"
  done >"$WORK/scripts/preset.env"
fi

# Always install into /Applications (not "relocated" onto a copy found elsewhere on the disk).
pkgbuild --analyze --root "$WORK/root" "$WORK/component.plist"
/usr/libexec/PlistBuddy -c "Set :0:BundleIsRelocatable false" "$WORK/component.plist"
pkgbuild --root "$WORK/root" --component-plist "$WORK/component.plist" --install-location / \
  --scripts "$WORK/scripts" --identifier edu.campus-portal.desktop --version "$VERSION" \
  "$WORK/campus-portal-component.pkg"
sed -e "s/@VERSION@/$VERSION/g" -e "s/@ARCHS@/$ARCHS/g" "$HERE/distribution.xml.in" \
  >"$WORK/distribution.xml"
PKG="campus-portal-$VERSION-macos.pkg"
productbuild --distribution "$WORK/distribution.xml" --package-path "$WORK" \
  ${SIGN:+--sign "$SIGN"} "$OUT/$PKG"

cd "$OUT"
touch SHA256SUMS
grep -v " $PKG\$" SHA256SUMS >SHA256SUMS.new || true
shasum -a 256 "$PKG" >>SHA256SUMS.new
mv SHA256SUMS.new SHA256SUMS
echo "Built $OUT/$PKG"
