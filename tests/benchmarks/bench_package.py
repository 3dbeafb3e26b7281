"""The packaged application: bundle and installer sizes, and start-up of the installed bundle to
its first 200 on /healthz, next to a frozen minimal Flask + waitress "hello" built the same way
(PyInstaller onedir, same virtualenv, same options): the floor.

The .deb is built by `make package` (or taken from dist/ with CAMPUS_PORTAL_PREBUILT=1) and
unpacked with `dpkg-deb -x`: the same files as `dpkg -i` installs, without needing root.
Cold start: the first start of a fresh copy on an empty data directory (page cache dropped when
running as root); warm start: the median of the following starts.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.benchmarks import floors
from tests.desktop.launcher_process import PortalClient, read_line

TITLE = "Packaged application (installed .deb)"

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
PACKAGE_VENV = ROOT / "build" / "package-venv"
WARM_STARTS = 5
GOAL_RATIO = 1.3
GOAL_SECONDS = 1.5
GOAL_DEB_MB = 30.0


def megabytes(size: int) -> float:
    return size / 1_000_000


def tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def build_package() -> float | None:
    if os.environ.get("CAMPUS_PORTAL_PREBUILT") == "1":
        return None
    started = time.monotonic()
    subprocess.run(["make", "--no-print-directory", "package"], cwd=ROOT, check=True)
    return time.monotonic() - started


FLOOR_SPEC = """
import sys

a = Analysis([{script!r}], excludes=["tkinter", "test", "unittest", "pydoc_data", "readline"])
if sys.platform.startswith("linux"):
    sys.path.insert(0, {installers!r})
    from pyinstaller_lean import make_lean

    make_lean(a)
pyz = PYZ(a.pure)
exe = EXE(pyz, a.scripts, [], exclude_binaries=True, name="hello", console=True, upx=False)
coll = COLLECT(exe, a.binaries, a.datas, strip=sys.platform.startswith("linux"), upx=False,
               name="hello")
"""


def build_floor(work: Path, source: str = floors.HELLO) -> tuple[Path, float]:
    """A reference app frozen like the portal: same PyInstaller, onedir, lean, stripped."""
    work.mkdir(parents=True, exist_ok=True)
    script = work / "hello.py"
    script.write_text(source)
    spec = work / "hello.spec"
    spec.write_text(FLOOR_SPEC.format(script=str(script), installers=str(ROOT / "installers")))
    started = time.monotonic()
    subprocess.run(
        [
            str(PACKAGE_VENV / "bin" / "pyinstaller"),
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(work / "dist"),
            "--workpath",
            str(work / "build"),
            str(spec),
        ],
        check=True,
        cwd=work,
    )
    return work / "dist" / "hello", time.monotonic() - started


def drop_page_cache() -> bool:
    """Make the next start read the bundle from disk (root only)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def time_to_health(command: list[str], env: dict[str, str], *, launch_token: bool) -> float:
    """Seconds from process start to the first 200 from /healthz; the process is stopped after.

    The launcher harness's pieces (tests/desktop/launcher_process.py) read the URL line and
    make the requests, as for every other launcher the tests start."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = read_line(process, timeout=120)
        if " running at " not in line:
            raise RuntimeError(f"{command[0]} printed no URL (first line {line!r})")
        url = urlsplit(line.split(" running at ", 1)[1].strip())
        client = PortalClient(url.port or 80)
        while True:
            try:
                if launch_token and not client.cookies:
                    client.exchange(url.path)  # what the window does first: cookie for token
                if client.get("/healthz").status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_times(
    command: list[str], env: dict[str, str], *, launch_token: bool
) -> tuple[float, float, bool]:
    dropped = drop_page_cache()
    cold = time_to_health(command, env, launch_token=launch_token)
    warm = [time_to_health(command, env, launch_token=launch_token) for _ in range(WARM_STARTS)]
    return cold, statistics.median(warm), dropped


def user_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        PORTAL_MACHINE_CONFIG=str(home / "no-machine-config.toml"),
    )
    return env


def run(context: Any) -> list[dict[str, Any]]:
    build_seconds = build_package()
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    version = subprocess.run(
        [str(DIST / "campus-portal" / "campus-portal"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    deb = DIST / f"campus-portal_{version}_{arch}.deb"
    tarball = next(DIST.glob(f"campus-portal-{version}-linux-*.tar.xz"))

    with tempfile.TemporaryDirectory(prefix="bench-package-") as temp:
        work = Path(temp)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        installed = work / "root" / "opt" / "campus-portal"
        floor, floor_build_seconds = build_floor(work / "floor")
        orm_floor, _ = build_floor(work / "floor-orm", floors.ORM)

        bundle_bytes, bundle_files = tree_size(installed)
        floor_bytes, floor_files = tree_size(floor)
        portal_cmd = [str(installed / "campus-portal"), "--headless"]
        portal_cold, portal_warm, dropped = start_times(
            portal_cmd, user_env(work / "home"), launch_token=True
        )
        floor_cold, floor_warm, _ = start_times(
            [str(floor / "hello")], user_env(work / "home-floor"), launch_token=False
        )
        orm_env = {**user_env(work / "home-orm"), "FLOOR_DATABASE": str(work / "orm.db")}
        orm_cold, orm_warm, _ = start_times([str(orm_floor / "hello")], orm_env, launch_token=False)
        # The same launcher from source in the build virtualenv: what freezing adds or saves.
        source_cold, source_warm, _ = start_times(
            [str(PACKAGE_VENV / "bin" / "campus-portal"), "--headless"],
            user_env(work / "home-source"),
            launch_token=True,
        )

    deb_mb = megabytes(deb.stat().st_size)
    warm_ratio = portal_warm / floor_warm
    rows = [
        {
            "Measure": "bundle on disk (MB)",
            "Campus Portal": megabytes(bundle_bytes),
            "Floor (hello)": megabytes(floor_bytes),
            "Ratio": megabytes(bundle_bytes) / megabytes(floor_bytes),
            "Goal": "",
        },
        {
            "Measure": "files in bundle",
            "Campus Portal": bundle_files,
            "Floor (hello)": floor_files,
            "Ratio": bundle_files / floor_files,
            "Goal": "",
        },
        {
            "Measure": ".deb, xz (MB)",
            "Campus Portal": deb_mb,
            "Floor (hello)": "",
            "Ratio": "",
            "Goal": context.goal(
                ".deb size (xz)",
                met=deb_mb < GOAL_DEB_MB,
                target=f"< {GOAL_DEB_MB:.0f} MB",
                measured=f"{deb_mb:.1f} MB",
            ),
        },
        {
            "Measure": "tarball, xz (MB)",
            "Campus Portal": megabytes(tarball.stat().st_size),
            "Floor (hello)": "",
            "Ratio": "",
            "Goal": "",
        },
        {
            "Measure": "cold start to /healthz 200 (ms)",
            "Campus Portal": round(portal_cold * 1000),
            "Floor (hello)": round(floor_cold * 1000),
            "Ratio": f"{portal_cold / floor_cold:.2f}x",
            "Goal": "",
        },
        {
            "Measure": f"warm start to /healthz 200 (ms, median of {WARM_STARTS})",
            "Campus Portal": round(portal_warm * 1000),
            "Floor (hello)": round(floor_warm * 1000),
            "Ratio": f"{warm_ratio:.2f}x",
            "Goal": context.goal(
                "installed warm start, against the floor",
                met=warm_ratio <= GOAL_RATIO,
                target=f"<= {GOAL_RATIO}x the frozen floor",
                measured=f"{warm_ratio:.2f}x",
            )
            + ", "
            + context.goal(
                "installed warm start",
                met=portal_warm < GOAL_SECONDS,
                target=f"< {GOAL_SECONDS} s",
                measured=f"{portal_warm:.2f} s",
            ),
        },
        {
            "Measure": "reference: frozen floor with Flask-SQLAlchemy, one model, warm (ms)",
            "Campus Portal": round(orm_warm * 1000),
            "Floor (hello)": round(floor_warm * 1000),
            "Ratio": f"{orm_warm / floor_warm:.2f}x",
            "Goal": f"(cold {orm_cold * 1000:.0f} ms; portal / this reference: "
            f"{portal_warm / orm_warm:.2f}x)",
        },
        {
            "Measure": "same code from source, warm start (ms)",
            "Campus Portal": round(source_warm * 1000),
            "Floor (hello)": "",
            "Ratio": f"{source_warm / portal_warm:.2f}x",
            "Goal": f"(cold {source_cold * 1000:.0f} ms; ratio: source / frozen)",
        },
        {
            "Measure": "build (s): make package / PyInstaller alone",
            "Campus Portal": round(build_seconds, 1) if build_seconds is not None else "reused",
            "Floor (hello)": round(floor_build_seconds, 1),
            "Ratio": "",
            "Goal": "",
        },
    ]
    context.note(
        "Campus Portal: `campus-portal --headless` on an empty data directory (the cold start "
        "creates and migrates the database); time to the launch URL exchanged for the cookie "
        "and then /healthz 200. Floor: a frozen Flask + waitress app answering /healthz. "
        + ("Page cache dropped before each cold start." if dropped else "Page cache not dropped.")
        + " Portal build (make package: venv, bundle, .deb, tarball): "
        + (f"{build_seconds:.0f} s." if build_seconds is not None else "reused from dist/.")
    )
    return rows
