"""The Windows and macOS installer definitions, checked here on Linux: the NSIS script compiles
around a stand-in payload, the macOS postinstall writes a settings file the portal reads, the
shell scripts pass shellcheck, and the CI workflow calls the same scripts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import platformdirs.macos
import platformdirs.windows
import pytest

from portal.config import read_config_file
from tests.package.conftest import ROOT, VERSION

pytestmark = pytest.mark.package

INSTALLERS = ROOT / "installers"


def test_windows_installer_compiles_around_a_stand_in_payload(tmp_path: Path) -> None:
    if shutil.which("makensis") is None:
        pytest.fail("makensis is missing: `make test` installs the Debian package nsis")
    payload = tmp_path / "campus-portal"
    (payload / "_internal/portal").mkdir(parents=True)
    for name in ("campus-portal.exe", "Campus Portal.exe"):
        (payload / name).write_bytes(b"MZ stand-in")
    (payload / "_internal/portal/__init__.pyc").write_bytes(b"stand-in")
    out = tmp_path / "out"
    result = subprocess.run(
        [str(INSTALLERS / "windows/build-installer.sh"), str(payload), str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr  # makensis -WX: warnings fail
    setup = out / f"campus-portal-{VERSION}-windows-x64-setup.exe"
    assert setup.read_bytes()[:2] == b"MZ"
    assert f"  {setup.name}" in (out / "SHA256SUMS").read_text()


def run_postinstall(tmp_path: Path, preset: str | None) -> Path:
    """Run the .pkg postinstall as Installer would, onto a stand-in target volume."""
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    shutil.copy(INSTALLERS / "macos/scripts/postinstall", scripts / "postinstall")
    if preset is not None:
        (scripts / "preset.env").write_text(preset)
    volume = tmp_path / "volume"
    volume.mkdir(exist_ok=True)
    result = subprocess.run(
        ["bash", str(scripts / "postinstall"), "/tmp/x.pkg", "/Applications", str(volume), "/"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return volume / "Library/Application Support/campus-portal/config.toml"


def test_macos_postinstall_writes_the_preset_as_the_portal_reads_it(tmp_path: Path) -> None:
    preset = (
        "SERVER_URL=https://portal.campus.example.edu\n"
        "ENROLMENT_CODE=$'quote\"and\\\\backslash'\n"
        "UPDATE_CHECK=0\n"
        "IDLE_LOGOUT_MINUTES=12\n"
    )
    config = run_postinstall(tmp_path, preset)
    assert read_config_file(config) == {
        "SERVER_URL": "https://portal.campus.example.edu",
        "ENROLMENT_CODE": 'quote"and\\backslash',
        "UPDATE_CHECK": False,
        "IDLE_LOGOUT_MINUTES": 12,
    }


def test_macos_postinstall_without_a_preset_keeps_its_settings(tmp_path: Path) -> None:
    config = tmp_path / "volume/Library/Application Support/campus-portal/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('server_url = "https://kept.example.edu"\n')
    assert run_postinstall(tmp_path, None) == config
    assert read_config_file(config) == {"SERVER_URL": "https://kept.example.edu"}


def test_installers_write_where_the_app_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paths in the NSIS script, the postinstall and the IT guide are platformdirs' own."""
    monkeypatch.setattr(
        platformdirs.windows,
        "get_win_folder",
        lambda name: {"CSIDL_COMMON_APPDATA": "C:\\ProgramData"}[name],
    )
    windows = platformdirs.windows.Windows("campus-portal", appauthor=False).site_config_dir
    assert windows.replace("/", "\\") == "C:\\ProgramData\\campus-portal"
    mac = platformdirs.macos.MacOS("campus-portal", appauthor=False)
    monkeypatch.setattr(platformdirs.macos, "_homebrew_prefix", lambda: None, raising=False)
    assert mac.site_config_dir == "/Library/Application Support/campus-portal"
    nsis = (INSTALLERS / "windows/campus-portal.nsi").read_text()
    assert 'StrCpy $ConfigDir "$APPDATA\\${APP_ID}"' in nsis and "SetShellVarContext all" in nsis
    assert (
        'Library/Application Support/campus-portal"'
        in (INSTALLERS / "macos/scripts/postinstall").read_text()
    )
    guide = (INSTALLERS / "README.md").read_text()
    for path in (
        "/etc/campus-portal/config.toml",
        "C:\\ProgramData\\campus-portal\\config.toml",
        "/Library/Application Support/campus-portal/config.toml",
    ):
        assert path in guide


def test_shell_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is missing: `make test` installs the Debian package shellcheck")
    scripts = [
        *INSTALLERS.glob("*/*.sh"),
        INSTALLERS / "linux/postinst",
        INSTALLERS / "linux/postrm",
        INSTALLERS / "macos/scripts/postinstall",
    ]
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_ci_workflow_builds_every_os_with_the_same_scripts() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github/workflows/build.yml").read_text())
    job = workflow["jobs"]["build"]
    assert {"ubuntu", "windows", "macos"} == {
        os_name.split("-")[0] for os_name in job["strategy"]["matrix"]["os"]
    }
    steps = [step for each in workflow["jobs"].values() for step in each["steps"]]
    commands = "\n".join(step.get("run", "") for step in steps)
    for script in (
        "build.spec",
        "installers/linux/build-deb.sh",
        "installers/windows/build-installer.sh",
        "installers/macos/build-pkg.sh",
        "make assets",
    ):
        assert script in commands
    # The Windows bundle is made on Windows and wrapped by NSIS on Linux (amd64 stubs), then
    # run under Wine by the same test as here.
    installer_job = workflow["jobs"]["windows-installer"]
    assert installer_job["needs"] == "build"
    assert "tests/package/test_windows_installer.py" in commands
    for step in steps:
        for script in ("installers/linux/build-deb.sh", "installers/windows/build-installer.sh"):
            if script in step.get("run", ""):
                assert (ROOT / script).stat().st_mode & 0o111
