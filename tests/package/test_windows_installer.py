"""The Windows installer, run for real: built by makensis around a stand-in payload and run
silently under Wine (64-bit), as IT would push it: install with preset settings, upgrade,
refused downgrade, refused bad switch, uninstall that keeps users' data, and /PURGE.

The stand-in payload does not run (it is not a real Windows build); what is tested is the
installer: where it puts files, the machine-wide settings file the portal reads, the registry
entries of Apps & features, and what the uninstaller leaves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal.config import read_config_file
from tests.package.conftest import ROOT, VERSION

pytestmark = pytest.mark.package

UNINSTALL_KEY = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\campus-portal"
NEWER = "99.0.0"


@dataclass(frozen=True)
class Wine:
    prefix: Path
    env: dict[str, str]

    @property
    def drive_c(self) -> Path:
        return self.prefix / "drive_c"

    @property
    def install_dir(self) -> Path:
        return self.drive_c / "Program Files" / "Campus Portal"

    @property
    def machine_config(self) -> Path:
        return self.drive_c / "ProgramData" / "campus-portal" / "config.toml"

    def run(self, *args: str) -> int:
        """Run a Windows program and wait until every process of the prefix has ended (the
        uninstaller copies itself to %TEMP% and goes on from there)."""
        result = subprocess.run(
            ["wine", *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        subprocess.run(["wineserver", "-w"], env=self.env, timeout=300, check=True)
        return result.returncode

    def installed_version(self) -> str | None:
        result = subprocess.run(
            ["wine", "reg", "query", UNINSTALL_KEY, "/v", "DisplayVersion"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for line in result.stdout.splitlines():
            if "DisplayVersion" in line:
                return line.split()[-1]
        return None

    def user_data_dir(self) -> Path:
        """%LOCALAPPDATA%\\campus-portal of the prefix's user, with a database in it."""
        users = [p for p in (self.drive_c / "users").iterdir() if p.name != "Public"]
        data = users[0] / "AppData" / "Local" / "campus-portal"
        data.mkdir(parents=True, exist_ok=True)
        (data / "portal.db").write_bytes(b"SQLite format 3\0 a user's data")
        return data


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wine]:
    if shutil.which("wine") is None or shutil.which("makensis") is None:
        pytest.fail("wine or makensis is missing: `make test` installs the Debian packages")
    prefix = tmp_path_factory.mktemp("wine") / "prefix"
    env = {
        **os.environ,
        "WINEPREFIX": str(prefix),
        "WINEARCH": "win64",
        "WINEDEBUG": "-all",
        "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono or Gecko download prompts
    }
    env.pop("DISPLAY", None)  # a silent install needs no screen
    subprocess.run(["wine", "wineboot", "--init"], env=env, capture_output=True, timeout=300)
    subprocess.run(["wineserver", "-w"], env=env, timeout=300, check=True)
    yield Wine(prefix, env)
    subprocess.run(["wineserver", "-k"], env=env, capture_output=True, timeout=60)


def build_setup(tmp_path: Path, version: str) -> Path:
    payload = tmp_path / f"payload-{version}" / "campus-portal"
    (payload / "_internal/portal").mkdir(parents=True)
    for name in ("campus-portal.exe", "Campus Portal.exe"):
        (payload / name).write_bytes(b"MZ stand-in " + version.encode())
    (payload / "_internal/portal/__init__.pyc").write_bytes(version.encode())
    out = tmp_path / f"out-{version}"
    subprocess.run(
        [str(ROOT / "installers/windows/build-installer.sh"), str(payload), str(out), version],
        capture_output=True,
        text=True,
        check=True,
    )
    return out / f"campus-portal-{version}-windows-x64-setup.exe"


def test_silent_install_with_presets_upgrade_and_uninstall_that_keeps_data(
    wine: Wine, tmp_path: Path
) -> None:
    setup = build_setup(tmp_path, VERSION)
    newer = build_setup(tmp_path, NEWER)

    # What installers/README.md tells IT to run (the URL holds "/": the whole URL is kept).
    code = wine.run(
        str(setup),
        "/S",
        "/SERVER_URL=https://portal.campus.example.edu/campus",
        "/ENROLMENT_CODE=ABCD-1234",
        "/UPDATE_CHECK=0",
        "/IDLE_LOGOUT_MINUTES=10",
    )
    assert code == 0
    assert (wine.install_dir / "campus-portal.exe").read_bytes().endswith(VERSION.encode())
    assert (wine.install_dir / "uninstall.exe").is_file()
    start_menu = wine.drive_c / "ProgramData/Microsoft/Windows/Start Menu/Programs"
    assert (start_menu / "Campus Portal.lnk").is_file()
    assert wine.installed_version() == VERSION
    assert read_config_file(wine.machine_config) == {
        "SERVER_URL": "https://portal.campus.example.edu/campus",
        "ENROLMENT_CODE": "ABCD-1234",
        "UPDATE_CHECK": False,
        "IDLE_LOGOUT_MINUTES": 10,
    }
    data = wine.user_data_dir()

    # A bad switch is refused with exit code 1 and changes nothing.
    assert wine.run(str(newer), "/S", "/UPDATE_CHECK=maybe") == 1
    assert wine.installed_version() == VERSION

    # Upgrade without presets: new program files, IT's settings and users' data kept.
    assert wine.run(str(newer), "/S") == 0
    assert wine.installed_version() == NEWER
    assert (wine.install_dir / "campus-portal.exe").read_bytes().endswith(NEWER.encode())
    assert read_config_file(wine.machine_config)["SERVER_URL"].endswith("/campus")

    # An older installer does not replace a newer version: exit code 2.
    assert wine.run(str(setup), "/S") == 2
    assert wine.installed_version() == NEWER

    # Silent uninstall: program files, shortcut and registry entry gone; data and settings kept.
    assert wine.run(str(wine.install_dir / "uninstall.exe"), "/S") == 0
    assert not wine.install_dir.exists()
    assert not (start_menu / "Campus Portal.lnk").exists()
    assert wine.installed_version() is None
    assert (data / "portal.db").read_bytes().startswith(b"SQLite format 3")
    assert wine.machine_config.is_file()


def test_uninstall_with_purge_removes_data_and_settings(wine: Wine, tmp_path: Path) -> None:
    setup = build_setup(tmp_path, VERSION)
    # Typed in cmd.exe as IT would (a batch file keeps the command line exactly as written):
    # a value in double quotes may hold spaces.
    script = tmp_path / "install.bat"
    script.write_text(
        f'"Z:{str(setup).replace("/", chr(92))}" /S /SERVER_URL="https://portal.example.edu/a b"'
        "\r\nexit /b %ERRORLEVEL%\r\n"
    )
    assert wine.run("cmd", "/c", f"Z:{str(script).replace('/', chr(92))}") == 0
    assert read_config_file(wine.machine_config)["SERVER_URL"] == "https://portal.example.edu/a b"
    data = wine.user_data_dir()
    assert wine.run(str(wine.install_dir / "uninstall.exe"), "/S", "/PURGE") == 0
    assert not wine.install_dir.exists()
    assert not data.exists()
    assert not wine.machine_config.exists()
