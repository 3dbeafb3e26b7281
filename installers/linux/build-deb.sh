#!/usr/bin/env bash
# Build the Linux installers from the PyInstaller bundle in dist/campus-portal:
#   dist/campus-portal_<version>_<arch>.deb        installs under /opt, /usr/bin link, menu entry
#   dist/campus-portal-<version>-linux-<arch>.tar.xz   the same bundle as a tarball
#   dist/SHA256SUMS                                 checksums of both, for verifying a download
#
# Usage: installers/linux/build-deb.sh [BUNDLE_DIR] [OUT_DIR]   (run by `make package`)
# Needs: dpkg-deb and dpkg-shlibdeps (Debian package dpkg-dev), patchelf, xz, sha256sum.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/installers/linux"
BUNDLE="$(realpath "${1:-$ROOT/dist/campus-portal}")"
OUT="$(realpath -m "${2:-$ROOT/dist}")"
NAME=campus-portal

[ -x "$BUNDLE/$NAME" ] || { echo "error: no bundle at $BUNDLE (run pyinstaller build.spec)" >&2; exit 1; }
VERSION="$("$BUNDLE/$NAME" --version | awk '{print $NF}')"
ARCH="$(dpkg --print-architecture)"
case "$ARCH" in amd64) TAR_ARCH=x86_64 ;; arm64) TAR_ARCH=aarch64 ;; *) TAR_ARCH="$ARCH" ;; esac
# Same commit, same archive timestamps (dpkg-deb and tar clamp to SOURCE_DATE_EPOCH).
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

WORK="$(mktemp -d "${TMPDIR:-/tmp}/campus-portal-deb.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/root"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
  "$STAGE/usr/share/icons/hicolor/scalable/apps" "$STAGE/usr/share/icons/hicolor/256x256/apps" \
  "$STAGE/usr/share/doc/$NAME"

cp -a "$BUNDLE" "$STAGE/opt/$NAME"
# PyInstaller copies libraries as the build machine has them, some with a RUNPATH into the
# builder's own Python installation: a path that exists only there. The bundle finds its
# libraries itself (the loader's search path is set by its launcher), so the RUNPATH goes.
while IFS= read -r -d '' file; do
  if head -c 4 "$file" | grep -q "ELF" && patchelf --print-rpath "$file" 2>/dev/null | grep -q .; then
    patchelf --remove-rpath "$file"
  fi
done < <(find "$STAGE/opt/$NAME" -type f -print0)
ln -s "/opt/$NAME/$NAME" "$STAGE/usr/bin/$NAME"
install -m 644 "$HERE/campus-portal.desktop" "$STAGE/usr/share/applications/$NAME.desktop"
install -m 644 "$ROOT/portal/static/img/icon.svg" \
  "$STAGE/usr/share/icons/hicolor/scalable/apps/$NAME.svg"
install -m 644 "$ROOT/desktop/resources/icon.png" \
  "$STAGE/usr/share/icons/hicolor/256x256/apps/$NAME.png"
install -m 644 "$HERE/config.toml.example" "$STAGE/usr/share/doc/$NAME/config.toml.example"
install -m 644 "$HERE/copyright" "$STAGE/usr/share/doc/$NAME/copyright"
gzip -9n <"$HERE/changelog" >"$STAGE/usr/share/doc/$NAME/changelog.gz"
mkdir -p "$STAGE/usr/share/man/man1" "$STAGE/usr/share/lintian/overrides"
gzip -9n <"$HERE/$NAME.1" >"$STAGE/usr/share/man/man1/$NAME.1.gz"
install -m 644 "$HERE/lintian-overrides" "$STAGE/usr/share/lintian/overrides/$NAME"
# Shared libraries are not programs (PyInstaller keeps libpython's executable bit).
find "$STAGE/opt/$NAME" -type f -name '*.so*' -exec chmod a-x {} +
install -m 755 "$HERE/postinst" "$HERE/postrm" "$STAGE/DEBIAN/"

# Dependencies: the libraries the bundle's ELF files link against (left out of the lean bundle,
# see build.spec), found by dpkg-shlibdeps, plus what the GTK window loads through GObject
# introspection (typelibs, not linked: dpkg-shlibdeps cannot see them).
mkdir -p "$WORK/shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$NAME" "$NAME" >"$WORK/shlibs/debian/control"
mapfile -t elf_files < <(find "$STAGE/opt/$NAME" -type f \( -name '*.so*' -o -perm -u+x \) \
  -exec sh -c 'head -c 4 "$1" | grep -q "ELF" && echo "$1"' _ {} \; | sort)
shlibs="$(cd "$WORK/shlibs" && dpkg-shlibdeps -O --ignore-missing-info -xlibc-bin \
  "-l$STAGE/opt/$NAME/_internal" "${elf_files[@]/#/-e}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || { echo "error: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
DEPENDS="$shlibs, libgtk-3-0, gir1.2-gtk-3.0, gir1.2-webkit2-4.1, libwebkit2gtk-4.1-0"

INSTALLED_SIZE="$(du -sk --apparent-size "$STAGE" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s|@DEPENDS@|$DEPENDS|" \
  -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" "$HERE/control.in" >"$STAGE/DEBIAN/control"

# Files are root's and world-readable whatever the umask of the build machine.
chmod -R u+rwX,go+rX,go-w "$STAGE"
find "$STAGE" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0 touch -h -d "@$SOURCE_DATE_EPOCH"

mkdir -p "$OUT"
DEB="$OUT/${NAME}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null

TARBALL="$OUT/$NAME-$VERSION-linux-$TAR_ARCH.tar.xz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$STAGE/opt" -cf - "$NAME" | xz -T0 -6 >"$TARBALL"

(cd "$OUT" && sha256sum "$(basename "$DEB")" "$(basename "$TARBALL")" >SHA256SUMS)
echo "Built $DEB ($(du -h "$DEB" | cut -f1))"
echo "Built $TARBALL ($(du -h "$TARBALL" | cut -f1))"
echo "Depends: $DEPENDS"
