"""`make run` on a fresh Debian machine with a display opens a window: the Debian packages that
building and loading the `desktop` extra need are installed first, and when the window toolkit
still cannot be installed the message names the packages that are missing."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]

# What each requirement of the `desktop` extra reads from the system on Debian, as files: the
# build of PyGObject and pycairo (a compiler, pkg-config, Python's and the libraries' headers)
# and, at run time, WebKitGTK's introspection data for pywebview. The Debian packages holding
# them are looked up with dpkg, so the Makefile's list is checked against the machine.
COMPILER = "/usr/bin/gcc"
PKG_CONFIG = "/usr/bin/pkg-config"
PYTHON_HEADERS = "/usr/include/python3.11/Python.h"  # Debian's python3.11, which make uses
CAIRO = "/usr/lib/*/pkgconfig/cairo.pc"
INTROSPECTION = "/usr/lib/*/pkgconfig/gobject-introspection-1.0.pc"
WEBKIT = "/usr/lib/*/girepository-1.0/WebKit2-4.1.typelib"
GTK = "/usr/lib/*/girepository-1.0/Gtk-3.0.typelib"
READS = {
    "pycairo": [COMPILER, PKG_CONFIG, PYTHON_HEADERS, CAIRO],
    "pygobject": [COMPILER, PKG_CONFIG, PYTHON_HEADERS, CAIRO, INTROSPECTION],
    "pywebview": [WEBKIT, GTK],
    # The update check's verification: wheels for every platform, nothing from the system.
    "tuf": [],
    "securesystemslib": [],
    "packaging": [],
}


def make_database() -> str:
    """make's own reading of the Makefile (variables expanded, rules and their recipes)."""
    result = subprocess.run(
        ["make", "-pnq", "-f", "Makefile"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout


def make_variable(database: str, name: str) -> list[str]:
    found = re.search(rf"^{name} :?= (.*)$", database, flags=re.MULTILINE)
    assert found, f"{name} is not set in the Makefile"
    return found.group(1).split()


def rule(database: str, target: str) -> str:
    """A rule's line of prerequisites and its recipe, as make printed them."""
    found = re.search(rf"^{re.escape(target)}:(.*?)(?=^[^\s#][^\n]*:|\Z)", database, re.M | re.S)
    assert found, f"no rule for {target}"
    return found.group(0)


def desktop_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["optional-dependencies"]["desktop"]]
    linux = {"sys_platform": "linux", "platform_system": "Linux"}
    return {
        requirement.name.lower(): requirement
        for requirement in requirements
        if requirement.marker is None or requirement.marker.evaluate(linux)
    }


def owners(pattern: str) -> set[str]:
    paths = glob.glob(pattern)
    assert paths, f"{pattern} is not on this machine (make test installs the window packages)"
    result = subprocess.run(
        ["dpkg-query", "-S", *paths], capture_output=True, text=True, check=True
    )
    return {line.split(":")[0].split(",")[0].strip() for line in result.stdout.splitlines()}


def with_dependencies(packages: list[str]) -> set[str]:
    """The packages and everything they depend on, as installed here (alternatives included)."""
    listing = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Depends},${Pre-Depends}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    depends: dict[str, list[str]] = {}
    for line in listing.splitlines():
        package, _, needs = line.partition("\t")
        names = [part.strip().split(" ")[0].split(":")[0] for part in re.split(r"[,|]", needs)]
        depends.setdefault(package, []).extend(name for name in names if name)
    seen: set[str] = set()
    waiting = list(packages)
    while waiting:
        package = waiting.pop()
        if package not in seen:
            seen.add(package)
            waiting.extend(depends.get(package, []))
    return seen


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="a Debian machine")
def test_make_run_installs_what_every_desktop_requirement_needs_before_the_extra():
    database = make_database()
    window_packages = make_variable(database, "APT_WINDOW")
    requirements = desktop_requirements()
    assert set(requirements) == set(READS), "a requirement of the desktop extra is not in READS"
    installed = with_dependencies(window_packages)
    for name, files in READS.items():
        for pattern in files:
            holders = owners(pattern)
            assert holders & installed, (
                f"{name} needs {pattern} (Debian package {', '.join(sorted(holders))}), "
                f"which APT_WINDOW ({' '.join(window_packages)}) does not bring"
            )
    # `make run` with a display builds the extra, and that waits for the window's packages.
    assert "$(VENV)/.desktop" in rule(database, "run")
    desktop = rule(database, ".venv/.desktop")
    prerequisites = desktop.splitlines()[0]
    assert "system-deps-window" in prerequisites.split("|", 1)[1]
    assert "$(APT_WINDOW)" in rule(database, "system-deps-window")
    assert "'.[desktop]'" in desktop


def _stub(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_a_toolkit_that_cannot_be_installed_names_the_missing_packages(tmp_path):
    """A fresh machine where apt-get cannot install (no network, no rights) and pip's build of
    PyGObject fails: the warning lists the Debian packages to install, and the next `make run`
    tries again (nothing is marked done)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    asked = tmp_path / "apt-get.log"
    _stub(
        stubs, "dpkg", 'for p; do case "$p" in -s) ;; python3-dev) exit 0;; *) exit 1;; esac; done'
    )
    _stub(stubs, "apt-get", f'echo "$@" >> {asked}; [ "$1" = update ] && exit 0; exit 100')
    _stub(stubs, "sudo", 'exec "$@"')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _stub(venv / "bin", "python", "echo 'error: pkg-config not found' >&2; exit 1")
    (venv / ".installed").touch()
    os.utime(venv / ".installed", (4e9, 4e9))  # newer than pyproject.toml: set up already
    result = subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}", "SUDO=", f"{venv}/.desktop"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # `make run` goes on, headless
    window_packages = make_variable(make_database(), "APT_WINDOW")
    missing = [package for package in window_packages if package != "python3-dev"]
    install_line = asked.read_text().splitlines()[-1]
    assert install_line.split()[-len(missing) :] == missing  # all asked for, before pip
    output = result.stdout + result.stderr
    assert "the window toolkit (PyGObject, pycairo, pywebview) could not be installed" in output
    assert f"Missing Debian packages: {' '.join(missing)}" in output
    assert "python3-dev" not in output.split("Missing Debian packages:")[1].splitlines()[0]
    assert not (venv / ".desktop").exists()
