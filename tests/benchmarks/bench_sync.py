"""Sync: a device's first sync of an instructor's and an admin's scope of the large demo data,
next to the floor measured in the same run (the same rows inserted into an empty SQLite file
with executemany in one transaction; the median of a few such copies); incremental syncs of a
few changes; a pull with nothing new; bytes on the wire against the number of changes.

The central server runs in server mode on PostgreSQL as it is deployed: gunicorn
(`campus-portal-server serve`, one gthread worker) in a process of its own, so that its work and
the device's do not share one interpreter. SYNC_BENCH_SERVER=thread serves it instead by waitress
in a thread of the benchmark's own process (as earlier runs did; always so when only SQLite is
chosen). Before the measured syncs, another instructor's device pulls its scope: the server is one
in use, its statements compiled (the measuring process's device code stays as cold as a
desktop copy's at its first sync). Each device is a SQLite file driven by
portal.sync.device.client.
Goals (issue 9): first sync within 3x of the floor; 10 changes pushed and pulled back with a
p95 under 200 ms; a pull with nothing new under 1 KB and 20 ms; bytes proportional to the
changes, not to the database.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from tests.benchmarks.harness import (
    build_portal,
    percentile,
    serve_portal,
    serve_portal_process,
)

TITLE = "Sync"
ROUNDS = 20
FLOOR_RATIO_GOAL = 3.0
INCREMENTAL_P95_GOAL_MS = 200.0
EMPTY_PULL_BYTES_GOAL = 1024
EMPTY_PULL_MS_GOAL = 20.0
WARM_UP_USER = "instructor0001"  # another instructor of the large demo data


class Wire:
    """An httpx client that counts the bytes that travel (request bodies and compressed
    answers as received)."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.client = httpx.Client(
            timeout=120, event_hooks={"request": [self._request], "response": [self._response]}
        )

    def _request(self, request: httpx.Request) -> None:
        self.sent += len(request.content)

    def _response(self, response: httpx.Response) -> None:
        response.read()
        self.received += response.num_bytes_downloaded

    def reset(self) -> int:
        total, self.sent, self.received = self.sent + self.received, 0, 0
        return total


def _device(root: Path, name: str) -> tuple[Any, Path]:
    from portal import create_app
    from portal.extensions import db

    data_dir = root / name
    data_dir.mkdir(parents=True)
    app = create_app(
        {
            "MODE": "desktop",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'portal.db'}",
            "SECRET_KEY": "benchmark-device-secret-key",
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        db.create_all()
    # What the process built so far lives on, as a desktop copy's start-up does: the launcher
    # freezes it (desktop/launcher.py), so the collector's passes during a sync skip it.
    gc.freeze()
    return app, data_dir


FLOOR_RUNS, FLOOR_SECONDS = 5, 2.0


def _floor(device_db: Path, folder: Path) -> tuple[int, float]:
    """Rows/s of the floor: every synchronised row of the device copied into an empty SQLite
    file (same schema, same pragmas) with executemany in one transaction. For a scope that
    copies in a tenth of a second, one slow moment of the machine weighs much: the median time
    of up to FLOOR_RUNS copies (as many as start within FLOOR_SECONDS), each into a new file."""
    from portal.sync.tables import SYNCED_TABLES

    source = sqlite3.connect(device_db)
    schema = [
        sql
        for (sql,) in source.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        )
    ]
    data = {
        entry.name: source.execute(f'SELECT * FROM "{entry.name}"').fetchall()  # noqa: S608
        for entry in SYNCED_TABLES
    }
    source.close()
    rows = sum(len(values) for values in data.values())
    times: list[float] = []
    folder.mkdir(parents=True, exist_ok=True)
    for run in range(FLOOR_RUNS):
        if sum(times) > FLOOR_SECONDS:
            break
        floor = sqlite3.connect(folder / f"floor-{run}.db", isolation_level=None)
        floor.execute("PRAGMA journal_mode=WAL")
        floor.execute("PRAGMA synchronous=NORMAL")
        for statement in schema:
            floor.execute(statement)
        started = time.perf_counter()
        floor.execute("BEGIN")
        for table, values in data.items():
            if values:
                marks = ", ".join("?" * len(values[0]))
                floor.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)  # noqa: S608
        floor.execute("COMMIT")
        times.append(time.perf_counter() - started)
        floor.close()
    return rows, statistics.median(times)


def _enrol(server: Any, device: Any, url: str, username: str, wire: Wire) -> Any:
    from portal.extensions import db
    from portal.models import User
    from portal.sync.device import client as sync_client
    from portal.sync.server import enrolment

    with server.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        code = enrolment.create_enrolment_code(
            db.session, user, created_by=None, now=datetime.now(UTC)
        )
        db.session.commit()
    with device.app_context():
        engine = db.engine
    sync_client.enrol(engine, url, code, device_name=f"bench-{username}", client=wire.client)
    return engine


def _warm_up(server: Any, url: str) -> None:
    """Another instructor's device enrols and pulls every page of its first sync (not applied:
    the server is warmed, not this process's device code), so that the measured syncs meet a
    server in use, its statements compiled, rather than one just started."""
    from portal.extensions import db
    from portal.models import User
    from portal.sync.device import client as sync_client
    from portal.sync.server import enrolment

    with server.app_context():
        user = db.session.scalar(select(User).where(User.username == WARM_UP_USER))
        code = enrolment.create_enrolment_code(
            db.session, user, created_by=None, now=datetime.now(UTC)
        )
        db.session.commit()
    with httpx.Client(timeout=120) as http:
        transport = sync_client.Transport(url, client=http)
        enrolled = transport.json("POST", "/enrol", {"code": code, "device_name": "warm-up"})
        transport.token = enrolled["token"]
        request: dict[str, Any] = {"cursor": 0, "fingerprint": ""}
        while not (page := transport.json("POST", "/pull", request))["complete"]:
            request = {
                "cursor": 0,
                "upto": page["upto"],
                "snapshot": page["snapshot"],
                "fingerprint": page["fingerprint"],
                **page["next"],
            }


def _edit_marks(device: Any, user_id: Any, marks: list[tuple[Any, Any]], round_: int) -> None:
    from portal.extensions import db
    from portal.grading.services import set_mark
    from portal.models import Assessment, User
    from portal.sync import capture

    with device.app_context():
        session = db.session
        capture.attribute_to(session, user_id)
        actor = session.get(User, user_id)
        for n, (assessment_id, student_id) in enumerate(marks):
            assessment = session.get(Assessment, assessment_id)
            set_mark(session, actor, assessment, student_id, (round_ + n) % 20)
        session.commit()
        session.remove()


def run(context: Any) -> list[dict[str, Any]]:
    from portal.extensions import db
    from portal.models import Assessment, Course, Mark, Section, User
    from portal.sync.device import runner as sync_runner
    from tests.benchmarks.bench_teaching import BENCH_COURSE, gradebook_path

    database = "postgresql" if "postgresql" in context.databases else "sqlite"
    root = Path(tempfile.mkdtemp(prefix="portal-bench-sync-"))
    if database == "postgresql":
        url = context._fresh_postgres_database("portal_bench_sync")
    else:
        url = f"sqlite:///{root / 'server.db'}"
    print(f"… building large demo data on a {database} sync server", flush=True)
    app, seconds = build_portal(url, "large", root / "server", MODE="server")
    setup = os.environ.get("SYNC_BENCH_SERVER", "process")
    if database != "postgresql":
        setup = "thread"  # server mode runs on PostgreSQL only
    served: Any = (
        serve_portal_process(app, root / "gunicorn")
        if setup == "process"
        else serve_portal(app, database, "large", seconds)
    )
    rows: list[dict[str, Any]] = []
    try:
        with served.session() as session:
            gradebook_path(session)  # a 300-student section with marks, for the instructor
            instructor_id = session.scalar(select(User.id).where(User.username == "instructor"))
            marks = [
                (mark.assessment_id, mark.student_id)
                for mark in session.scalars(
                    select(Mark)
                    .join(Assessment)
                    .join(Section, Section.id == Assessment.section_id)
                    .join(Course, Course.id == Section.course_id)
                    .where(Assessment.kind == "exam", Course.code == BENCH_COURSE)
                    .order_by(Mark.student_id)
                    .limit(100)
                )
            ]
        # --- a server in use: another instructor's device pulls its scope first -------------------
        _warm_up(app, served.url)
        # --- initial sync, next to the floor -------------------------------------------------
        devices: dict[str, Any] = {}
        for username in ("instructor", "admin"):
            device, data_dir = _device(root, username)
            wire = Wire()
            engine = _enrol(app, device, served.url, username, wire)
            wire.reset()
            started = time.perf_counter()
            summary = sync_runner.sync_once(
                engine, Path(device.config["PORTAL"]["UPLOAD_DIR"]), client=wire.client
            )
            elapsed = time.perf_counter() - started
            wire_bytes = wire.reset()
            floor_rows, floor_seconds = _floor(data_dir / "portal.db", root / f"floor-{username}")
            # Both rates count the rows the device holds in the end: a row that came twice (an
            # account named again by a later page) is not counted twice.
            rate = floor_rows / elapsed
            floor_rate = floor_rows / floor_seconds
            ratio = floor_rate / rate
            met = context.goal(
                f"first sync of {username}'s scope",
                met=ratio <= FLOOR_RATIO_GOAL,
                target=f"within {FLOOR_RATIO_GOAL:g}x of the floor",
                measured=f"{ratio:.2f}x (load average {os.getloadavg()[0]:.2f})",
            )
            rows.append(
                {
                    "Measure": f"First sync, {username}'s scope",
                    "Rows": floor_rows,
                    "Rows sent": summary.pulled,
                    "ms": elapsed * 1000,
                    "Rows/s": rate,
                    "Floor rows/s": floor_rate,
                    "x floor": ratio,
                    "KB on the wire": wire_bytes / 1024,
                    "Load": os.getloadavg()[0],
                    "Goal": f"within {FLOOR_RATIO_GOAL:g}x of the floor",
                    "Met": met,
                }
            )
            devices[username] = (device, engine, wire)
        # --- incremental: 10 changes pushed and pulled back -------------------------------------
        device, engine, wire = devices["instructor"]
        upload_dir = Path(device.config["PORTAL"]["UPLOAD_DIR"])
        samples: list[float] = []
        sizes: list[int] = []
        for round_ in range(ROUNDS):
            _edit_marks(device, instructor_id, marks[:10], round_)
            wire.reset()
            started = time.perf_counter()
            summary = sync_runner.sync_once(engine, upload_dir, client=wire.client)
            samples.append((time.perf_counter() - started) * 1000)
            sizes.append(wire.reset())
            assert summary.pushed == 10, summary.line()
        p95 = percentile(samples, 0.95)
        rows.append(
            {
                "Measure": "10 changes: push + pull",
                "Rows": 10,
                "ms": percentile(samples, 0.5),
                "p95 ms": p95,
                "KB on the wire": sorted(sizes)[len(sizes) // 2] / 1024,
                "Goal": f"p95 under {INCREMENTAL_P95_GOAL_MS:g} ms",
                "Met": context.goal(
                    "10 changes pushed and pulled back",
                    met=p95 < INCREMENTAL_P95_GOAL_MS,
                    target=f"p95 under {INCREMENTAL_P95_GOAL_MS:g} ms",
                    measured=f"{p95:.1f} ms (load average {os.getloadavg()[0]:.2f})",
                ),
            }
        )
        # --- nothing new ------------------------------------------------------------------------
        empty: list[float] = []
        empty_bytes: list[int] = []
        for _ in range(ROUNDS):
            wire.reset()
            started = time.perf_counter()
            summary = sync_runner.sync_once(engine, upload_dir, client=wire.client)
            empty.append((time.perf_counter() - started) * 1000)
            empty_bytes.append(wire.reset())
            assert summary.pushed == 0 and summary.pulled == 0, summary.line()
        empty_p95, most_bytes = percentile(empty, 0.95), max(empty_bytes)
        rows.append(
            {
                "Measure": "Sync with nothing new",
                "Rows": 0,
                "ms": percentile(empty, 0.5),
                "p95 ms": empty_p95,
                "KB on the wire": most_bytes / 1024,
                "Goal": f"under {EMPTY_PULL_BYTES_GOAL} bytes and {EMPTY_PULL_MS_GOAL:g} ms",
                "Met": context.goal(
                    "a sync with nothing new",
                    met=most_bytes < EMPTY_PULL_BYTES_GOAL and empty_p95 < EMPTY_PULL_MS_GOAL,
                    target=f"under {EMPTY_PULL_BYTES_GOAL} bytes and {EMPTY_PULL_MS_GOAL:g} ms",
                    measured=(
                        f"{most_bytes} bytes, p95 {empty_p95:.1f} ms "
                        f"(load average {os.getloadavg()[0]:.2f})"
                    ),
                ),
            }
        )
        # --- bytes against changes --------------------------------------------------------------
        per_change: dict[int, float] = {}
        for count in (1, 10, 100):
            _edit_marks(device, instructor_id, marks[:count], ROUNDS + count)
            wire.reset()
            sync_runner.sync_once(engine, upload_dir, client=wire.client)
            total = wire.reset() - most_bytes  # what the changes added to an empty sync
            per_change[count] = total / count
            rows.append(
                {
                    "Measure": f"Bytes for {count} change(s)",
                    "Rows": count,
                    "KB on the wire": (total + most_bytes) / 1024,
                    "Bytes per change": total / count,
                }
            )
        proportional = per_change[100] <= 2 * per_change[10]
        rows[-1]["Goal"] = "bytes per change do not grow"
        rows[-1]["Met"] = context.goal(
            "bytes per change do not grow with the changes",
            met=proportional,
            target="100 changes: at most 2x the bytes per change of 10",
            measured=f"{per_change[10]:.0f} and {per_change[100]:.0f} bytes per change",
        )
        how = (
            "gunicorn (one gthread worker) in its own process"
            if setup == "process"
            else "waitress in a thread of the benchmark's process"
        )
        context.note(
            f"Server: {database}, large demo data, served by {how}, over HTTP on this machine, "
            "warmed by another instructor's first pull; devices: SQLite files. The floor "
            "inserts the rows the device received into an empty SQLite file (same schema) with "
            f"executemany in one transaction (median of up to {FLOOR_RUNS} copies, as many as "
            f"start within {FLOOR_SECONDS:g} s)."
        )
        for device, _engine, wire in devices.values():
            wire.client.close()
            with device.app_context():
                db.session.remove()
                db.engine.dispose()
    finally:
        served.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows
