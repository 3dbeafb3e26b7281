"""The Linux package for real: build once, `dpkg -i`, run the installed command, `dpkg -r`.

The tests run in file order and share one installation and one user's home; the last one
removes the package and checks that the user's data is still there.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.package.conftest import (
    COMMAND,
    INSTALL_DIR,
    MACHINE_CONFIG,
    PACKAGE,
    VERSION,
    Build,
    as_root,
    installed_version,
    user_environment,
)

pytestmark = pytest.mark.package


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_deb_declares_the_system_gtk_and_webkit_it_uses(package_build: Build) -> None:
    depends = {item.split()[0] for item in deb_field(package_build.deb, "Depends").split(", ")}
    assert {"gir1.2-webkit2-4.1", "libgtk-3-0", "libgirepository-1.0-1", "libssl3"} <= depends
    assert deb_field(package_build.deb, "Version") == VERSION
    contents = subprocess.run(
        ["dpkg-deb", "-c", str(package_build.deb)], capture_output=True, text=True, check=True
    ).stdout
    for path in (
        "./opt/campus-portal/campus-portal",
        "./usr/bin/campus-portal -> /opt/campus-portal/campus-portal",
        "./usr/share/applications/campus-portal.desktop",
        "./usr/share/icons/hicolor/scalable/apps/campus-portal.svg",
        "./usr/share/icons/hicolor/256x256/apps/campus-portal.png",
    ):
        assert path in contents


def test_bundle_carries_its_files_and_leaves_out_gtk_and_development_tools(
    package_build: Build,
) -> None:
    internal = package_build.bundle / "_internal"
    for needed in (
        "portal/templates/base.html",
        "portal/static/vendor/htmx/htmx.min.js",
        "portal/static/img/icon.svg",
        "portal/migrations/env.py",
        "portal/migrations/versions/0001_initial_schema.py",
        f"campus_portal-{VERSION}.dist-info/METADATA",
        # The compiled catalogues and Babel's CLDR data for each language.
        "portal/translations/ar/LC_MESSAGES/messages.mo",
        "portal/translations/fr/LC_MESSAGES/messages.mo",
        "babel/locale-data/ar.dat",
        "babel/locale-data/fr.dat",
    ):
        assert (internal / needed).is_file(), needed
    # Sync pages are decoded by orjson and travel as zstd (httpx decodes it only when the
    # module is there; without it a first sync would quietly fall back to slower gzip).
    # The update check verifies Ed25519 signatures with cryptography's compiled module.
    for extension in (
        "orjson/orjson.*",
        "zstandard/backend_c.*",
        "cryptography/hazmat/bindings/_rust*",
    ):
        assert list(internal.glob(extension)), extension
    names = {path.relative_to(internal).as_posix() for path in internal.rglob("*")}
    unwanted = [
        name
        for name in names
        if name.split("/")[0] in {"tests", "tkinter", "PyQt6", "PyQt5", "pytest", "share", "lib"}
        or name.startswith(("libgtk", "libwebkit", "libjavascriptcore", "libicu", "gi_typelibs"))
    ]
    assert unwanted == []


def test_no_library_looks_in_the_build_machines_folders(
    package_build: Build, tmp_path: Path
) -> None:
    """PyInstaller copies libraries with the builder's RUNPATH; the package must not keep it."""
    subprocess.run(["dpkg-deb", "-x", str(package_build.deb), str(tmp_path)], check=True)
    with_path = []
    for path in (tmp_path / "opt" / "campus-portal").rglob("*"):
        if not path.is_file() or path.is_symlink() or path.read_bytes()[:4] != b"\x7fELF":
            continue
        dynamic = subprocess.run(
            ["readelf", "-d", str(path)], capture_output=True, text=True, check=False
        ).stdout
        if "RUNPATH" in dynamic or "(RPATH)" in dynamic:
            with_path.append(str(path.relative_to(tmp_path)))
    assert with_path == []


def test_a_build_that_succeeds_prints_no_traceback(package_build: Build) -> None:
    """Warnings a build always printed (PyInstaller's gi hooks looking for GLib 2.80's
    GioUnix/GLibUnix typelibs, which Debian 12 lacks) hid real failures; build.spec leaves those
    names out, so a traceback now means something went wrong."""
    if package_build.output is None:
        pytest.skip("an earlier build was reused (CAMPUS_PORTAL_PREBUILT=1)")
    assert "Traceback" not in package_build.output, package_build.output
    for namespace in ("GioUnix", "GLibUnix"):
        assert namespace not in package_build.output, package_build.output


def test_debian_checks_find_nothing(package_build: Build) -> None:
    """lintian, as a Debian maintainer runs it; what is overridden is justified in
    installers/linux/lintian-overrides (an add-on under /opt, CPython's own modules)."""
    if not Path("/usr/bin/lintian").exists():
        unavailable("lintian is not installed (apt-get install lintian)")
    result = subprocess.run(
        ["lintian", "--tag-display-limit", "0", "--fail-on", "none", str(package_build.deb)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
    assert tags == [], "\n".join(tags)
    contents = subprocess.run(
        ["dpkg-deb", "-c", str(package_build.deb)], capture_output=True, text=True, check=True
    ).stdout
    for path in (
        "./usr/share/doc/campus-portal/changelog.gz",
        "./usr/share/doc/campus-portal/copyright",
        "./usr/share/man/man1/campus-portal.1.gz",
    ):
        assert path in contents


def test_checksums_cover_the_installers(package_build: Build) -> None:
    result = subprocess.run(
        ["sha256sum", "--check", "--strict", package_build.sums.name],
        cwd=package_build.sums.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert package_build.deb.name in result.stdout
    assert package_build.tarball.name in result.stdout
    with tarfile.open(package_build.tarball) as tarball:
        assert "campus-portal/campus-portal" in tarball.getnames()


def test_installed_command_prints_its_version(installed: Build) -> None:
    assert installed_version() == VERSION
    assert COMMAND.resolve() == INSTALL_DIR / "campus-portal"
    result = subprocess.run([str(COMMAND), "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"Campus Portal {VERSION}"


def test_every_library_the_bundle_links_is_on_the_system(installed: Build) -> None:
    missing = []
    for path in INSTALL_DIR.rglob("*"):
        if path.is_file() and path.read_bytes()[:4] == b"\x7fELF":
            ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
            missing += [
                f"{path}: {line.strip()}" for line in ldd.stdout.splitlines() if "not found" in line
            ]
    assert missing == []


def test_desktop_entry_is_valid(installed: Build) -> None:
    entry = Path("/usr/share/applications/campus-portal.desktop")
    text = entry.read_text()
    assert "Exec=campus-portal\n" in text and "Icon=campus-portal\n" in text
    validate = subprocess.run(["which", "desktop-file-validate"], capture_output=True)
    if validate.returncode == 0:
        result = subprocess.run(
            ["desktop-file-validate", str(entry)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout


def test_headless_demo_serves_pages_through_the_launch_url(
    installed: Build, user_home: Path, start_app
) -> None:
    app = start_app(["--headless", "--demo"], user_environment(user_home))
    launch_url = app.wait_for_launch_url()
    assert launch_url.startswith("http://127.0.0.1:")
    status, page = app.get(launch_url)
    assert status == 200
    assert "Log in · Campus Portal" in page
    status, body = app.get("/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["version"] == VERSION
    assert health["database"]["status"] == "ok"
    status, css = app.get("/static/vendor/bootstrap/bootstrap.min.css")
    assert status == 200 and "Bootstrap" in css[:500]
    assert app.stop() == 0
    assert list((user_home / ".local/share/campus-portal").rglob("portal.db"))


def test_the_bundle_serves_its_pages_in_arabic(
    installed: Build, user_home: Path, start_app
) -> None:
    """The compiled catalogue and Babel's Arabic data are in the bundle: a copy whose default
    language is Arabic shows its log-in page in Arabic, right to left."""
    app = start_app(
        ["--headless", "--demo"], user_environment(user_home, PORTAL_DEFAULT_LANGUAGE="ar")
    )
    status, page = app.get(app.wait_for_launch_url())
    assert status == 200
    assert '<html lang="ar" dir="rtl"' in page
    assert "bootstrap.rtl.min.css" in page
    assert "تسجيل الدخول" in page  # "Log in", from the compiled Arabic catalogue
    status, css = app.get("/static/vendor/bootstrap/bootstrap.rtl.min.css")
    assert status == 200
    assert app.stop() == 0


def test_machine_wide_config_written_by_it_is_picked_up(
    installed: Build, user_home: Path, start_app
) -> None:
    previous = MACHINE_CONFIG.read_bytes() if MACHINE_CONFIG.exists() else None
    MACHINE_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    MACHINE_CONFIG.write_text(
        "# written by IT\n[portal]\n"
        'server_url = "https://portal.campus.example.edu"\n'
        'enrolment_code = "LAB-2-PC-17"\n'
        "update_check = false\n"
        "idle_logout_minutes = 7\n",
        encoding="utf-8",
    )
    try:
        app = start_app(["--headless", "--demo"], user_environment(user_home))
        app.get(app.wait_for_launch_url())
        status, body = app.get("/healthz")
        assert status == 200
        assert json.loads(body)["settings"] == {
            "server_url": "https://portal.campus.example.edu",
            "enrolment_code_set": True,
            "update_check": False,
            "idle_logout_minutes": 7,
        }
        assert app.stop() == 0
    finally:
        if previous is None:
            MACHINE_CONFIG.unlink()
        else:
            MACHINE_CONFIG.write_bytes(previous)


def screenshot_once_painted(display: str, shot: Path, timeout: float = 60) -> Path:
    """The load event can come before the window's first frame reaches the X server: take
    screenshots until one shows more than a few colours."""
    deadline = time.monotonic() + timeout
    colours = 0
    while time.monotonic() < deadline:
        subprocess.run(
            ["import", "-display", display, "-window", "root", str(shot)], check=True, timeout=60
        )
        colours = int(
            subprocess.run(
                ["identify", "-format", "%k", str(shot)], capture_output=True, text=True
            ).stdout
            or 0
        )
        if colours > 50:
            return shot
        time.sleep(0.2)  # polling for the first painted frame
    raise AssertionError(f"the window showed only {colours} colours within {timeout} s")


@pytest.mark.window
def test_installed_app_opens_its_window_under_xvfb(
    installed: Build, user_home: Path, start_app, xvfb_display: str
) -> None:
    from tests.package.conftest import ARTIFACTS

    env = user_environment(user_home, DISPLAY=xvfb_display)
    app = start_app(["--demo", "--verbose"], env)
    loaded = app.wait_for_output(r"page loaded (\{.*\})", timeout=120)
    info = json.loads(loaded.group(1))
    assert "Campus Portal" in info.get("title", "")
    shot = screenshot_once_painted(xvfb_display, ARTIFACTS / "package-window.png")
    assert shot.stat().st_size > 10_000
    assert app.stop() == 0


def test_removal_keeps_the_users_data(installed: Build, user_home: Path) -> None:
    data_dir = user_home / ".local/share/campus-portal"
    databases = sorted(data_dir.rglob("portal.db"))
    assert databases, "the earlier tests left no user data to keep"
    sizes = {path: path.stat().st_size for path in databases}
    result = subprocess.run(as_root(["dpkg", "-r", PACKAGE]), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert installed_version() is None
    assert not COMMAND.exists() and not COMMAND.is_symlink()
    assert not INSTALL_DIR.exists()
    assert {path: path.stat().st_size for path in databases} == sizes
    assert not os.path.exists("/usr/share/applications/campus-portal.desktop")
