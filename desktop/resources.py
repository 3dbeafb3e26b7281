"""Files shipped with the launcher (the window icon), found the same way from source or frozen."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent / "resources"


def resources_dir() -> Path:
    """Where desktop/resources lives: next to this module, or inside a PyInstaller bundle.

    A frozen build must carry the folder as data at `desktop/resources`
    (PyInstaller: `datas=[("desktop/resources", "desktop/resources")]`).
    """
    if getattr(sys, "frozen", False):
        bundle = getattr(sys, "_MEIPASS", None) or Path(sys.executable).resolve().parent
        return Path(bundle) / "desktop" / "resources"
    return SOURCE_DIR


def resource_path(name: str) -> Path:
    """The path of one shipped file, e.g. resource_path("icon.png")."""
    path = resources_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"launcher resource {name!r} is missing (looked in {path.parent})")
    return path


def icon_path() -> Path:
    """The window icon: .ico on Windows, PNG elsewhere."""
    return resource_path("icon.ico" if sys.platform == "win32" else "icon.png")
