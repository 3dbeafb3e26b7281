"""The desktop launcher from source: start-up time and memory, next to a minimal floor.

- Headless: process start to the first 200 from /healthz (the launch URL printed on stdout is
  exchanged for the cookie first, as a script would), median of several warm starts.
- Window (under a private Xvfb, pywebview GTK): process start to the page's load event, as
  the page reports it through the JS API, median of several starts. The data folder holds an
  administrator, so the page is the log-in page every start shows (not the first-run page).
- The floor: a minimal Flask + waitress "hello" started the same way (same interpreter, same
  readiness line, same /healthz; for the window, the same pywebview window on its page), in
  turn with the portal's starts; and the reference, the floor with Flask-SQLAlchemy and one
  model (tests/benchmarks/floors.py), which any app keeping its data through the ORM pays.
  Goals: the headless start within 1.3x of the reference (the ORM alone keeps every such app
  above 1.3x of the bare floor), the window's page load within 1.5x of the floor's window.
- Memory: resident set size of the launcher process with the large demo data, after visiting
  every page in the navigation bar as the admin and as a student.

Run alone: `python -m tests.benchmarks.bench_desktop` (prints the Markdown table), or as part of
`make bench` / `python -m tests.benchmarks.run --only desktop`. BENCH_DESKTOP_RUNS sets the
number of starts per measurement (default 5).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop.starting import STARTING_TITLE
from tests.benchmarks import floors
from tests.desktop.conftest import create_first_admin
from tests.desktop.launcher_process import (
    ROOT,
    Launcher,
    PortalClient,
    Xvfb,
    launcher_env,
    read_line,
    wait_for_log,
)

TITLE = "Desktop launcher: start-up and memory"
RUNS = int(os.environ.get("BENCH_DESKTOP_RUNS", "5"))
REFERENCE_GOAL_RATIO = 1.3  # headless start / the floor with Flask-SQLAlchemy
WINDOW_GOAL_RATIO = 1.5  # window page load / the floor's window
PORTAL_PAGE_LOADED = r"page loaded (\{(?:(?!" + re.escape(STARTING_TITLE) + r").)*\})$"
NAV_LINK = re.compile(r'<a class="nav-link[^"]*"[^>]*href="([^"]+)"', re.S)

FLOOR_WINDOW = """
import json, signal, sys, threading, time
from flask import Flask
from waitress.server import create_server
import webview

app = Flask(__name__)

@app.get("/")
def index():
    return "<!doctype html><title>Hello</title><h1>Hello</h1>"

server = create_server(app, host="127.0.0.1", port=0)
threading.Thread(target=server.run, daemon=True).start()
REPORT = (
    "(function () {"
    "  function send() { var nav = performance.getEntriesByType('navigation')[0];"
    "    window.pywebview.api.page_loaded(performance.timeOrigin + nav.loadEventEnd); }"
    "  if (document.readyState === 'complete') { setTimeout(send, 0); }"
    "  else { window.addEventListener('load', function () { setTimeout(send, 0); }); }"
    "})();"
)

class Api:
    def page_loaded(self, epoch_ms):
        print(f"page loaded {json.dumps({'loadEventEpoch': epoch_ms / 1000})}", flush=True)

window = webview.create_window("Hello", f"http://127.0.0.1:{server.effective_port}/",
                               js_api=Api(), width=1200, height=800)
window.events.loaded += lambda: window.run_js(REPORT)
signal.signal(signal.SIGTERM, lambda *_: window.destroy())
webview.start(gui="gtk")
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def in_turn(*starts: Callable[[], float]) -> list[list[float]]:
    """RUNS timings of each start, taken in turn (portal, floor, portal, ...): on a shared
    machine whose load changes during the run, each ratio then compares starts made under the
    same load."""
    timings: list[list[float]] = [[] for _ in starts]
    for _ in range(RUNS):
        for start, times in zip(starts, timings, strict=True):
            times.append(start())
    return timings


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor > 0 else "—"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


# --- headless -----------------------------------------------------------------------------------


def headless_start(data_dir: Path) -> float:
    """Seconds from process start to the first 200 from /healthz."""
    launcher = Launcher(data_dir)
    launcher.start()
    client = PortalClient(launcher.port)
    client.exchange(launcher.launch_path)
    response = client.get("/healthz")
    elapsed = time.time() - launcher.started_at
    assert response.status == 200, response
    code, _, stderr = launcher.stop()
    assert code == 0, stderr
    return elapsed


def floor_headless_start(work: Path, source: str = floors.HELLO) -> float:
    """Seconds from process start to the first 200 from /healthz of a reference app."""
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-c", source],
        cwd=work,
        env={**os.environ, "FLOOR_DATABASE": str(work / "floor-orm.db")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = read_line(process, 60)
        port = int(line.rsplit(":", 1)[1].strip("/"))
        response = PortalClient(port).get("/healthz")
        elapsed = time.time() - started
        assert response.status == 200
    finally:
        _stop(process)
    return elapsed


# --- window -------------------------------------------------------------------------------------


def window_start(data_dir: Path, display: str) -> float:
    """Seconds from process start to the page's load event, as the page reported it."""
    log_file = data_dir / "logs" / "campus-portal.log"
    if log_file.exists():
        log_file.unlink()
    launcher = Launcher(data_dir, headless=False, env=launcher_env(DISPLAY=display))
    process = launcher.spawn()
    try:
        # The portal's first page (never the "still starting" page of a long schema upgrade).
        match = wait_for_log(log_file, PORTAL_PAGE_LOADED, 120, process)
        page = json.loads(match.group(1))
    finally:
        launcher.stop()
    assert page["title"].startswith("Log in"), page  # the page measured is the log-in page
    return float(page["loadEventEpoch"]) - launcher.started_at


def with_admin(data_dir: Path) -> None:
    """Create the first administrator, as a person does on the first-run page."""
    launcher = Launcher(data_dir).start()
    try:
        create_first_admin(launcher.client())
    finally:
        launcher.stop()


def floor_window_start(work: Path, display: str) -> float:
    env = launcher_env(DISPLAY=display)
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-c", FLOOR_WINDOW],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = read_line(process, 120)
        loaded = json.loads(line.removeprefix("page loaded "))["loadEventEpoch"]
    finally:
        _stop(process)
    return float(loaded) - started


# --- memory -------------------------------------------------------------------------------------


def resident_kib(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0])
    return fields


def visit_main_pages(client: PortalClient, username: str, password: str) -> list[str]:
    """Log in, open the home page and every page of the navigation bar, log out."""
    token = client.csrf_token("/login")
    response = client.post(
        "/login", {"csrf_token": token, "username": username, "password": password}
    )
    assert response.status == 302, f"log-in as {username} failed: {response.status}"
    home = client.follow("/")
    links = sorted(set(NAV_LINK.findall(home.text)))
    for link in links:
        assert client.follow(link).status == 200, link
    client.post("/logout", {"csrf_token": client.csrf_token("/")})
    return links


def large_data_dir(context: Any, work: Path) -> tuple[Path, str]:
    """A data dir holding the large demo data (copied from the runner's SQLite portal when it
    has one, otherwise generated here), and the size used."""
    from desktop.backups import online_backup

    size = "large" if "large" in getattr(context, "sizes", ["large"]) else "small"
    data_dir = work / f"memory-{size}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if context is not None and "sqlite" in getattr(context, "databases", []):
        served = context.portal("sqlite", size)
        source = Path(served.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
        online_backup(source, data_dir / "portal.db")
        return data_dir, size
    env = launcher_env(PORTAL_DATA_DIR=str(data_dir))
    for command in (["init-db"], ["demo-data", "--size", size]):
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "portal", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return data_dir, size


def memory_rows(context: Any, work: Path) -> tuple[list[dict[str, Any]], list[str]]:
    data_dir, size = large_data_dir(context, work)
    launcher = Launcher(data_dir)
    launcher.start()
    try:
        assert launcher.process is not None
        idle = resident_kib(launcher.process.pid)
        launch_cookie = launcher.client().cookies  # the token works once: every visitor
        pages: list[str] = []  # shares the launch cookie, each with its own portal session
        for username in ("admin", "instructor", "student"):
            pages += visit_main_pages(
                PortalClient(launcher.port, dict(launch_cookie)), username, "demo-pass"
            )
        after = resident_kib(launcher.process.pid)
    finally:
        launcher.stop()

    floor = subprocess.Popen([sys.executable, "-c", floors.HELLO], cwd=work, stdout=subprocess.PIPE)
    try:
        read_line(floor, 60)
        floor_rss = resident_kib(floor.pid)["VmRSS"]
    finally:
        _stop(floor)
    rows = [
        {
            "measure": f"resident memory, {size} demo data, idle after start (MB)",
            "campus portal": idle["VmRSS"] / 1024,
            "floor": floor_rss / 1024,
            "ratio": _ratio(idle["VmRSS"], floor_rss),
        },
        {
            "measure": f"resident memory, {size} demo data, after the main pages (MB)",
            "campus portal": after["VmRSS"] / 1024,
            "floor": floor_rss / 1024,
            "ratio": _ratio(after["VmRSS"], floor_rss),
        },
        {
            "measure": "peak resident memory (MB; each log-in's Argon2 hash takes 64 MiB)",
            "campus portal": after["VmHWM"] / 1024,
            "floor": "",
            "ratio": "",
        },
    ]
    return rows, sorted(set(pages))


# --- the module's entry points -------------------------------------------------------------------


def compile_sources() -> None:
    """Byte-compile the portal and the launcher, as an installed copy is (pip and PyInstaller
    do it): with PYTHONDONTWRITEBYTECODE set, every start would compile them again instead."""
    import compileall

    for package in ("portal", "desktop"):
        compileall.compile_dir(ROOT / package, quiet=1)


def _print_goal(name: str, *, met: bool, target: str, measured: str) -> str:
    verdict = "met" if met else "NOT MET"
    print(f"goal {name}: {target}, measured {measured}: {verdict}", file=sys.stderr)
    return verdict


def run(context: Any = None) -> list[dict[str, Any]]:
    note = getattr(context, "note", lambda text: print(text, file=sys.stderr))
    goal = getattr(context, "goal", _print_goal)
    work = Path(tempfile.mkdtemp(prefix="bench-desktop-"))
    rows: list[dict[str, Any]] = []
    try:
        compile_sources()  # warm starts: bytecode ready, as in an installed copy
        data_dir = work / "data"
        headless_start(data_dir)  # first start: creates and migrates the database (not timed)
        floor_headless_start(work, floors.ORM)  # creates its database (not timed)
        portal_times, floor_times, orm_times = in_turn(
            lambda: headless_start(data_dir),
            lambda: floor_headless_start(work),
            lambda: floor_headless_start(work, floors.ORM),
        )
        portal, floor, orm = _median(portal_times), _median(floor_times), _median(orm_times)
        rows.append(
            {
                "measure": f"headless: start to first 200 on /healthz (ms, median of {RUNS})",
                "campus portal": portal * 1000,
                "floor": floor * 1000,
                "ratio": _ratio(portal, floor),
                "reference": orm * 1000,
                "ratio to the reference": _ratio(portal, orm),
                "goal": goal(
                    "headless start, from source",
                    met=portal <= REFERENCE_GOAL_RATIO * orm,
                    target=f"<= {REFERENCE_GOAL_RATIO}x the floor with Flask-SQLAlchemy",
                    measured=f"{portal / orm:.2f}x (load average {_load():.2f})",
                ),
            }
        )
        rows.append(
            {
                "measure": "headless, reference: the floor with Flask-SQLAlchemy, one model (ms)",
                "campus portal": orm * 1000,
                "floor": floor * 1000,
                "ratio": _ratio(orm, floor),
            }
        )
        note(
            f"Headless start: {portal / orm:.2f}x the reference (the floor with Flask-SQLAlchemy "
            f"and one model; goal {REFERENCE_GOAL_RATIO}x), {portal / floor:.1f}x the bare "
            f"floor, which the reference alone is {orm / floor:.1f}x of."
        )

        if shutil.which("Xvfb") and _window_toolkit():
            with_admin(data_dir)
            with Xvfb() as xvfb:
                window_times, floor_window = in_turn(
                    lambda: window_start(data_dir, xvfb.display),
                    lambda: floor_window_start(work, xvfb.display),
                )
            portal, floor = _median(window_times), _median(floor_window)
            rows.append(
                {
                    "measure": f"window: start to the page's load event (ms, median of {RUNS})",
                    "campus portal": portal * 1000,
                    "floor": floor * 1000,
                    "ratio": _ratio(portal, floor),
                    "goal": goal(
                        "window start to the page's load event, from source",
                        met=portal <= WINDOW_GOAL_RATIO * floor,
                        target=f"<= {WINDOW_GOAL_RATIO}x the floor's window",
                        measured=f"{portal / floor:.2f}x (load average {_load():.2f})",
                    ),
                }
            )
        else:
            note("No window measurement: Xvfb or pywebview's GTK backend is missing.")

        memory, pages = memory_rows(context, work)
        rows += memory
        note("Pages visited for the memory figure: " + ", ".join(pages))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        for key in ("campus portal", "floor"):
            if isinstance(row[key], float):
                row[key] = round(row[key], 1)
    return rows


def _window_toolkit() -> bool:
    try:
        import gi

        gi.require_version("WebKit2", "4.1")
        import webview  # noqa: F401
    except (ImportError, ValueError):
        return False
    return True


def main() -> int:
    """Print the table in Markdown (without the runner; the memory figure then generates its
    own large demo data)."""
    from tests.benchmarks.run import markdown_table

    rows = run(None)
    print(f"## {TITLE}\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
