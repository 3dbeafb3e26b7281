"""Two builds from the same commit hold the same files, and the files they copy from the source
tree (templates, static files, migrations, the icon) are byte for byte those of the commit.

Not a byte-for-byte reproducible build: PyInstaller's archives and compiled modules may differ
between two runs, and this test does not claim otherwise."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.package.conftest import ROOT, Build

pytestmark = [pytest.mark.package, pytest.mark.slow]


def listing(bundle: Path) -> set[str]:
    return {
        path.relative_to(bundle).as_posix()
        for path in bundle.rglob("*")
        if path.is_file() or path.is_symlink()
    }


# Folders build.spec copies from the source tree as they are (its `datas`).
COPIED = ("portal/templates/", "portal/static/", "portal/migrations/", "desktop/resources/")


def copied_files(bundle: Path) -> dict[str, str]:
    """{path below the copied folder: sha256} of every file the build copied from the tree."""
    found = {}
    for name in listing(bundle):
        for folder in COPIED:
            if folder in name and not name.endswith(".pyc"):
                relative = folder + name.split(folder, 1)[1]
                found[relative] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    return found


def test_two_builds_hold_the_same_files_and_copies(package_build: Build, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(ROOT / "build/package-venv/bin/pyinstaller"),
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(tmp_path / "dist"),
            "--workpath",
            str(tmp_path / "work"),
            str(ROOT / "build.spec"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = listing(package_build.bundle), listing(tmp_path / "dist/campus-portal")
    assert sorted(first - second) == [] and sorted(second - first) == []
    assert len(first) > 100
    copies = copied_files(package_build.bundle)
    assert copies == copied_files(tmp_path / "dist/campus-portal")
    assert len(copies) > 20 and any(name.startswith("portal/templates/") for name in copies)
    for name, digest in copies.items():
        source = ROOT / name
        if source.is_file():  # the vendored front-end files are built, not in the tree
            assert hashlib.sha256(source.read_bytes()).hexdigest() == digest, name
