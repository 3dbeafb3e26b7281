"""Fixtures for the packaged application: one build per test session, a real `dpkg -i`, and the
installed `campus-portal` started the way a user or IT would start it.

`make package` builds dist/ (in its own virtualenv). Set CAMPUS_PORTAL_PREBUILT=1 to test what
is already in dist/ instead of building again (for a quick rerun after `make package`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from desktop.window import PAGE_REPORTS_SWITCH
from tests.conftest import unavailable
from tests.desktop.launcher_process import Xvfb

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
ARTIFACTS = ROOT / "tests" / "artifacts"
PACKAGE = "campus-portal"
INSTALL_DIR = Path("/opt/campus-portal")
COMMAND = Path("/usr/bin/campus-portal")
MACHINE_CONFIG = Path("/etc/campus-portal/config.toml")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
URL_LINE = re.compile(r"Campus Portal running at (http://\S+)")


def as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo") is None:
        unavailable("installing a .deb needs root or sudo")
    return ["sudo", "-n", *command]


@dataclass(frozen=True)
class Build:
    bundle: Path
    deb: Path
    tarball: Path
    sums: Path
    seconds: float | None  # None when an earlier build was reused
    output: str | None = None  # what `make package` printed (None when reused)


@pytest.fixture(scope="session")
def package_build() -> Build:
    seconds = None
    output = None
    # Not a PORTAL_* name: tests/conftest.py clears those so that no setting leaks into a test.
    if os.environ.get("CAMPUS_PORTAL_PREBUILT") != "1":
        started = time.monotonic()
        result = subprocess.run(
            ["make", "--no-print-directory", "package"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        seconds = time.monotonic() - started
        assert result.returncode == 0, f"make package failed:\n{result.stdout}\n{result.stderr}"
        output = result.stdout + result.stderr
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    build = Build(
        bundle=DIST / PACKAGE,
        deb=DIST / f"{PACKAGE}_{VERSION}_{arch}.deb",
        tarball=next(DIST.glob(f"{PACKAGE}-{VERSION}-linux-*.tar.xz"), DIST / "missing.tar.xz"),
        sums=DIST / "SHA256SUMS",
        seconds=seconds,
        output=output,
    )
    assert build.deb.is_file(), f"no {build.deb} after make package"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "package-build.json").write_text(
        json.dumps(
            {
                "build_seconds": seconds,
                "bundle_bytes": sum(
                    f.stat().st_size for f in build.bundle.rglob("*") if f.is_file()
                ),
                "deb_bytes": build.deb.stat().st_size,
            },
            indent=2,
        )
    )
    return build


def installed_version() -> str | None:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", PACKAGE], capture_output=True, text=True
    )
    if result.returncode != 0 or not result.stdout.startswith("install ok installed"):
        return None
    return result.stdout.split()[-1]


@pytest.fixture(scope="session")
def installed(package_build: Build) -> Iterator[Build]:
    """The .deb installed for real with dpkg; removed at the end unless a test did it already."""
    result = subprocess.run(
        as_root(["dpkg", "-i", str(package_build.deb)]), capture_output=True, text=True
    )
    assert result.returncode == 0, f"dpkg -i failed:\n{result.stdout}\n{result.stderr}"
    try:
        yield package_build
    finally:
        if installed_version() is not None:
            subprocess.run(as_root(["dpkg", "-r", PACKAGE]), capture_output=True)


@pytest.fixture(scope="session")
def user_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One OS user's home for every run of the installed app (so data outlives `dpkg -r`)."""
    return tmp_path_factory.mktemp("home")


def user_environment(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user logged in to a desktop: no test-only PORTAL_* settings, and the
    window's test switch on (its pages are logged as "page loaded {...}")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        LANG="C.UTF-8",
    )
    env[PAGE_REPORTS_SWITCH] = "1"
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.update(extra)
    return env


class RunningApp:
    """A started `campus-portal`, its output (read all along) and a cookie-keeping client."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command = command
        self.lines: list[str] = []
        self.launch_url = ""
        self._url_seen = threading.Event()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read_output, daemon=True).start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = URL_LINE.search(line)
            if match and not self.launch_url:
                self.launch_url = match.group(1)
                self._url_seen.set()
        self._url_seen.set()  # the output ended: stop waiting

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Poll the output until a line matches (or the process ends, or time runs out)."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := compiled.search(line):
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.05)  # polling the output for the line, not waiting a fixed time
        raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output}")

    def wait_for_launch_url(self, timeout: float = 120) -> str:
        self._url_seen.wait(timeout)
        if not self.launch_url:
            self.stop()
            raise AssertionError(f"{self.command} printed no launch URL:\n{self.output}")
        return self.launch_url

    @property
    def base(self) -> str:
        parts = urllib.parse.urlsplit(self.launch_url)
        return f"{parts.scheme}://{parts.netloc}"

    def get(self, path_or_url: str) -> tuple[int, str]:
        """GET with the window's cookies (open the launch URL first)."""
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        try:
            with self._opener.open(url, timeout=30) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 60) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def start_app() -> Iterator[Any]:
    """start_app(args, env) -> RunningApp; every app started is stopped at the end."""
    started: list[RunningApp] = []

    def start(args: list[str], env: dict[str, str]) -> RunningApp:
        app = RunningApp([str(COMMAND), *args], env)
        started.append(app)
        return app

    yield start
    for app in started:
        if app.process.poll() is None:
            app.stop()


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A virtual X display of our own (the desktop tests' Xvfb: it picks a free number)."""
    if shutil.which("Xvfb") is None:
        unavailable("Xvfb is not installed (make test installs it)")
    with Xvfb(1280, 860) as xvfb:
        yield xvfb.display
