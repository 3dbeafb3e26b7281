"""Two builds from the same commit list the same files (PyInstaller run a second time)."""

from __future__ import annotations

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


def test_two_builds_list_the_same_files(package_build: Build, tmp_path: Path) -> None:
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
