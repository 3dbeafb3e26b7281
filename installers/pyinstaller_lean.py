"""Lean Linux bundles: leave out what Debian already ships and let the system's copy serve.

Used by build.spec (and by the benchmark's frozen "hello" floor, built the same way). The .deb
declares the left-out libraries as dependencies (installers/linux/build-deb.sh finds them with
dpkg-shlibdeps), so GTK, WebKitGTK, GLib, OpenSSL and SQLite come from the system's packages.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

SYSTEM_DIRS = ("/usr/lib/", "/lib/", "/usr/lib64/", "/lib64/", "/usr/share/")
# Where the gi hooks put GTK data, icon themes, locales, typelibs and the files they generate
# from them (gdk-pixbuf loaders.cache, compiled GSettings schemas).
GTK_DATA_DIRS = ("share/", "lib/", "etc/", "gi_typelibs/", "gio_modules/")
# Run-time hooks that point GLib, GIO, GTK, Pango and gdk-pixbuf at those copies, which a lean
# bundle does not have; without them the system's GTK finds its own modules and data.
BUNDLED_GTK_HOOKS = {
    "pyi_rth_gtk",
    "pyi_rth_gdkpixbuf",
    "pyi_rth_gi",
    "pyi_rth_gio",
    "pyi_rth_glib",
}


def from_system(source: Any) -> bool:
    return bool(source) and str(source).startswith(SYSTEM_DIRS)


def make_lean(analysis: Any) -> None:
    """Filter a PyInstaller Analysis in place (Linux only)."""
    # Shared libraries from Debian packages; not Python's own extension modules, and not
    # libpython, which the bootloader loads from the bundle.
    analysis.binaries = [
        entry
        for entry in analysis.binaries
        if not (
            entry[2] == "BINARY"
            and from_system(entry[1])
            and not PurePath(entry[0]).name.startswith("libpython")
        )
    ]
    analysis.datas = [
        entry
        for entry in analysis.datas
        if not (from_system(entry[1]) or entry[0].replace("\\", "/").startswith(GTK_DATA_DIRS))
    ]
    analysis.scripts = [entry for entry in analysis.scripts if entry[0] not in BUNDLED_GTK_HOOKS]
