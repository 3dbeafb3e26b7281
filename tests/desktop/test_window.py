"""The real window: pywebview with GTK WebKit2 under a private Xvfb, screenshot kept.

The page reports back through pywebview's JS API (pywebviewready, then the page_loaded
callback), which the launcher logs; the screenshot in tests/artifacts/ must show the portal's
navigation bar, not an empty window.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from desktop.window import PAGE_REPORTS_SWITCH
from tests.conftest import ARTIFACTS, unavailable
from tests.desktop.conftest import mark_from_a_newer_version
from tests.desktop.launcher_process import (
    ROOT,
    Launcher,
    Xvfb,
    launcher_env,
    run_cli,
    wait_for_log,
)

pytestmark = pytest.mark.window


@pytest.fixture(autouse=True)
def _needs_xvfb() -> None:
    if shutil.which("Xvfb") is None:
        unavailable("Xvfb is not installed (make test installs it)")


NAVBAR = (0x12, 0x3D, 0x6A)  # --portal-primary
PAGE_LOADED = r"page loaded (\{.*\})"


def _window_toolkit_missing() -> str | None:
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        gi.require_version("WebKit2", "4.1")
        import webview  # noqa: F401
        from gi.repository import WebKit2  # noqa: F401
    except (ImportError, ValueError) as exc:
        return f"pywebview's GTK backend is not installed: {exc}"
    return None


@pytest.fixture(scope="module")
def display():
    reason = _window_toolkit_missing()
    if reason:
        pytest.fail(reason + " (make test installs it: the `desktop` extra)")
    with Xvfb(1280, 900) as xvfb:
        yield xvfb


def count_color(image: Path, rgb: tuple[int, int, int], tolerance: int = 6) -> int:
    """How many pixels of `image` have (about) this colour (ImageMagick's histogram)."""
    histogram = subprocess.run(
        ["convert", str(image), "-format", "%c", "histogram:info:-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = 0
    for line in histogram.splitlines():
        match = re.match(r"\s*(\d+):\s*\(\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)", line)
        if match:
            count, *channels = match.groups()
            values = [float(c) for c in channels]
            if max(values) > 255:  # 16-bit output
                values = [v / 257 for v in values]
            if all(abs(v - want) <= tolerance for v, want in zip(values, rgb, strict=True)):
                total += int(count)
    return total


def screenshot_when_painted(xvfb: Xvfb, path: Path, timeout: float = 30.0) -> int:
    """Take screenshots until the navigation bar is painted; return its pixel count."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        xvfb.screenshot(path)
        painted = count_color(path, NAVBAR)
        if painted > 20_000 or time.monotonic() > deadline:
            return painted
        pause.wait(0.2)


def test_window_opens_renders_and_closes_cleanly(display, admin_data_dir, tmp_path):
    (admin_data_dir / "window.json").write_text('{"width": 1100, "height": 760}')
    env = launcher_env(DISPLAY=display.display)
    launcher = Launcher(admin_data_dir, headless=False, env=env)
    process = launcher.spawn()
    log_file = admin_data_dir / "logs" / "campus-portal.log"
    try:
        info = json.loads(wait_for_log(log_file, PAGE_LOADED, 120, process).group(1))
        shot = ARTIFACTS / "desktop-window.png"
        navbar_pixels = screenshot_when_painted(display, shot)

        assert info["title"] == "Log in · Campus Portal"
        assert info["heading"] == "Log in to Campus Portal"
        assert info["url"].endswith("/login")  # the token is gone from the URL
        assert "/launch/" not in info["url"]
        assert info["stylesheets"] >= 2  # Bootstrap and portal.css came through the guard
        assert info["textLength"] > 100
        assert (info["innerWidth"], info["innerHeight"]) == (1100, 760)  # remembered size
        assert navbar_pixels > 20_000, f"the window looks empty: see {shot}"

        # a second start brings this window to the front instead of serving twice
        second = run_cli("--data-dir", str(admin_data_dir), env=env)
        assert second.returncode == 0, second.stderr
        assert "its window was brought to the front" in second.stderr
        assert process.poll() is None
    finally:
        code, stdout, stderr = launcher.stop()  # SIGTERM closes the window
    assert code == 0, stderr
    assert stdout == ""  # with a window nothing is printed
    log = log_file.read_text()
    assert "window closed" in log and "server stopped" in log and "WAL checkpoint" in log
    assert "Traceback" not in stderr
    wal = admin_data_dir / "portal.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    saved = json.loads((admin_data_dir / "window.json").read_text())
    assert (saved["width"], saved["height"]) == (1100, 760)


def test_the_shipped_window_reports_and_logs_no_page_contents(display, admin_data_dir):
    """Without the tests' switch the window shows the portal, but no script is injected, no
    JS API is offered and the log holds no page's URL, title or heading."""
    env = launcher_env(DISPLAY=display.display)
    del env[PAGE_REPORTS_SWITCH]
    launcher = Launcher(admin_data_dir, headless=False, env=env)
    launcher.spawn()
    log_file = admin_data_dir / "logs" / "campus-portal.log"
    try:
        shot = ARTIFACTS / "desktop-window-shipped.png"
        navbar_pixels = screenshot_when_painted(display, shot, timeout=120)
        assert navbar_pixels > 20_000, f"the window looks empty: see {shot}"
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    log = log_file.read_text()
    assert "window closed" in log
    assert "page loaded" not in log and "test page reports" not in log
    assert "Log in · Campus Portal" not in log and "Log in to Campus Portal" not in log


def test_a_problem_found_while_the_window_opens_is_shown_in_it(display, admin_data_dir):
    """The portal is built while the window opens: a database it refuses (here one from a
    newer version) is explained in that window, then the launcher exits with the problem's
    code, without opening a second window."""
    mark_from_a_newer_version(admin_data_dir)
    launcher = Launcher(admin_data_dir, headless=False, env=launcher_env(DISPLAY=display.display))
    process = launcher.spawn()
    log_file = admin_data_dir / "logs" / "campus-portal.log"
    try:
        info = json.loads(wait_for_log(log_file, PAGE_LOADED, 120, process).group(1))
        shot = ARTIFACTS / "desktop-window-problem.png"
        display.screenshot(shot)
        assert info["heading"] == "This database comes from a newer Campus Portal"
        assert info["textLength"] > 100  # the explanation and the backups, not an empty page
    finally:
        code, stdout, stderr = launcher.stop()
    assert code == 3, stderr
    assert "newer Campus Portal" in stderr and stdout == ""
    assert "Traceback" not in stderr


# --- the window's own process ---------------------------------------------------------------

WINDOW_PROCESS = r"window process (\d+) started"


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_until_ended(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        pause.wait(0.05)
    return True


def _window_started(display, data_dir: Path) -> tuple[Launcher, int]:
    """A launcher with its window showing the log-in page; the window process's id."""
    launcher = Launcher(data_dir, headless=False, env=launcher_env(DISPLAY=display.display))
    process = launcher.spawn()
    log_file = data_dir / "logs" / "campus-portal.log"
    pid = int(wait_for_log(log_file, WINDOW_PROCESS, 120, process).group(1))
    wait_for_log(log_file, PAGE_LOADED, 120, process)
    return launcher, pid


def test_the_window_runs_in_its_own_process_and_never_sees_the_token_in_its_arguments(
    display, admin_data_dir
):
    """The launch URL reaches the window's process through a pipe: neither its command line
    nor its environment (both readable by other programs) holds a launch token."""
    launcher, pid = _window_started(display, admin_data_dir)
    try:
        assert launcher.process is not None and pid != launcher.process.pid
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--window-host" in command
        environment = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"/launch/" not in b"".join(command) and b"/launch/" not in environment
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        assert int(parent) == launcher.process.pid
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    assert _wait_until_ended(pid), "the window's process outlived the launcher"


def test_closing_the_window_stops_the_launcher_and_its_server(display, admin_data_dir):
    """The window closes by itself (here: its process is asked to end, as a session logout
    asks it; the same path as the user closing it): the launcher stops the server and exits."""
    (admin_data_dir / "window.json").unlink(missing_ok=True)
    launcher, pid = _window_started(display, admin_data_dir)
    os.kill(pid, signal.SIGTERM)
    code, stdout, stderr = launcher.finish(timeout=60)
    assert code == 0, stderr
    assert stdout == ""
    log = (admin_data_dir / "logs" / "campus-portal.log").read_text()
    assert "window closed" in log and "without its window being closed" not in log
    assert "server stopped" in log and "WAL checkpoint" in log
    assert _wait_until_ended(pid)
    saved = json.loads((admin_data_dir / "window.json").read_text())
    assert saved["width"] >= 800  # the window's size was saved by its process on the way out


def test_a_killed_window_process_stops_the_server_cleanly(display, admin_data_dir):
    launcher, pid = _window_started(display, admin_data_dir)
    port = json.loads(Path(admin_data_dir / "campus-portal.instance").read_text())["port"]
    os.kill(pid, signal.SIGKILL)
    code, stdout, stderr = launcher.finish(timeout=60)
    assert code == 0, stderr
    log = (admin_data_dir / "logs" / "campus-portal.log").read_text()
    assert "window's process ended" in log and "without its window being closed" in log
    assert "server stopped" in log and "WAL checkpoint" in log and log.rstrip().endswith("stopped")
    assert not (admin_data_dir / "campus-portal.instance").exists()
    with pytest.raises(OSError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # the lock was released: the data folder starts again
    again = Launcher(admin_data_dir).start()
    assert again.stop()[0] == 0


def test_a_killed_launcher_takes_its_window_with_it(display, admin_data_dir):
    """Killed outright (no clean shutdown), the launcher leaves no window behind: the
    window's process sees its input end and closes."""
    launcher, pid = _window_started(display, admin_data_dir)
    launcher.kill()
    assert _wait_until_ended(pid), "the window stayed open after its launcher was killed"


def test_a_second_start_opens_no_window_process_for_long(display, admin_data_dir):
    """The window's process starts before the lock is taken; a second start closes it again
    and focuses the first window."""
    launcher, first_pid = _window_started(display, admin_data_dir)
    try:
        env = launcher_env(DISPLAY=display.display)
        second = run_cli("--data-dir", str(admin_data_dir), env=env)
        assert second.returncode == 0, second.stderr
        assert "its window was brought to the front" in second.stderr
        assert "Traceback" not in second.stderr
        helpers = [
            pid for pid in _window_processes_of_this_tree() if pid != first_pid and _alive(pid)
        ]
        assert helpers == [], "a window process of the second start is still running"
        assert _alive(first_pid)
    finally:
        assert launcher.stop()[0] == 0


def _window_processes_of_this_tree() -> list[int]:
    """Window processes started from this source tree (the launchers' working folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            folder = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if b"--window-host" in command and folder == ROOT:
            found.append(int(entry.name))
    return found
