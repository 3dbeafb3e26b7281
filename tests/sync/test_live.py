"""Sync with real processes: the central server as gunicorn (`campus-portal-server`) on a
throwaway PostgreSQL database, devices as data folders driven by the real command line
(`campus-portal enrol` / `campus-portal sync`), clients killed with SIGKILL mid-push and
mid-pull. PostgreSQL is mandatory in CI (CI=true: a missing server fails); elsewhere these tests
are skipped when it cannot be reached.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db as _db
from portal.models import (
    Assessment,
    ChangeLogEntry,
    Mark,
    OutboxEntry,
    ProcessedChange,
    Registration,
    Section,
    User,
)
from portal.sync import capture
from portal.sync.server import enrolment
from tests import factories
from tests.conftest import make_app
from tests.server.test_server import free_port, server_command, wait_for_health
from tests.sync.conftest import Device, assert_replica_matches

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIN = Path(sys.executable).parent


def device_command(data_dir: Path, *args: str) -> list[str]:
    return [str(BIN / "campus-portal"), "--data-dir", str(data_dir), *args]


@pytest.fixture
def live(postgres_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """gunicorn on a new PostgreSQL database, with its environment and an in-process app over
    the same database for setting up data and checking results."""
    env = dict(os.environ)
    env.update(
        PORTAL_MODE="server",
        PORTAL_DATABASE_URL=postgres_url,
        PORTAL_SECRET_KEY="live-sync-secret-key-0123456789",
        PORTAL_RATELIMIT_STORAGE_URI="memory://",
        PORTAL_UPLOAD_DIR=str(tmp_path / "server-files"),
        PORTAL_LOG_LEVEL="WARNING",
        PORTAL_SYNC_SNAPSHOT_PAGE_ROWS="2000",  # the killed-pull test needs a few pages
    )
    migrated = subprocess.run(
        server_command("migrate"), env=env, capture_output=True, text=True, timeout=180
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        server_command("serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    app = make_app(tmp_path / "inspect", postgres_url, MODE="server")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process, log_path)
        yield {"url": base, "env": env, "app": app, "root": tmp_path}
    finally:
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def seed(app: Flask, students: int = 3) -> dict[str, Any]:
    with app.app_context():
        db = _db.session
        instructor = factories.make_user(db, "instructor", username="teach1")
        lab_staff = factories.make_user(db, "lab_staff", username="lab1")
        factories.make_user(db, "admin", username="admin1")
        section = factories.make_section(
            db,
            capacity=students + 5,
            instructor_id=instructor.id,
            lab_staff_id=lab_staff.id,
        )
        people = [factories.make_user(db, "student", username=f"stud{n}") for n in range(students)]
        db.add_all(
            Registration(student_id=p.id, section_id=section.id, status="enrolled") for p in people
        )
        section.enrolled_count = students
        exam = Assessment(
            section_id=section.id, name="Exam", kind="exam", weight=60, max_points=100
        )
        lab = Assessment(section_id=section.id, name="Lab", kind="lab", weight=40, max_points=10)
        db.add_all([exam, lab])
        db.commit()
        return {
            "instructor": instructor.id,
            "lab_staff": lab_staff.id,
            "students": [p.id for p in people],
            "exam": exam.id,
            "lab": lab.id,
            "section": section.id,
        }


def enrol(live: dict[str, Any], username: str) -> Path:
    """A new data folder enrolled through the real command lines (code printed by the server
    command, enrolment and first sync by the desktop command)."""
    made = subprocess.run(
        server_command("enrolment-code", "create", "--user", username),
        env=live["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    code = made.stdout.strip().splitlines()[-1]
    data_dir = live["root"] / f"device-{username}"
    enrolled = run_device(data_dir, "enrol", "--server", live["url"], "--code", code)
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    return data_dir


def device_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")} | {
        "PORTAL_MACHINE_CONFIG": "/nonexistent/machine.toml",
        "PORTAL_USER_CONFIG": "/nonexistent/user.toml",
    }


def run_device(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        device_command(data_dir, *args),
        env=device_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def device_app(data_dir: Path) -> Device:
    """The device's database opened in this process, as the desktop app opens it."""
    app = make_app(data_dir, f"sqlite:///{data_dir / 'portal.db'}", DATA_DIR=str(data_dir))
    return Device(app, httpx.Client(), Path(app.config["PORTAL"]["UPLOAD_DIR"]))


def close(device: Device) -> None:
    with device.app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def offline_marks(data_dir: Path, actor: Any, marks: list[tuple[Any, Any, str]]) -> None:
    from portal.grading.services import parse_points, set_mark

    device = device_app(data_dir)
    try:
        with device.session():
            db = _db.session
            capture.attribute_to(db, actor)
            for assessment_id, student_id, points in marks:
                set_mark(
                    db,
                    db.get(User, actor),
                    db.get(Assessment, assessment_id),
                    student_id,
                    parse_points(points),
                )
            db.commit()
    finally:
        close(device)


def points(app: Flask, assessment_id: Any, student_id: Any) -> float | None:
    with app.app_context():
        found = _db.session.scalar(
            select(Mark.points).filter_by(assessment_id=assessment_id, student_id=student_id)
        )
        _db.session.rollback()
        return found


def check_replica(live: dict[str, Any], data_dir: Path) -> None:
    device = device_app(data_dir)
    try:
        assert_replica_matches(live["app"], device)
        with device.session():
            assert _db.session.scalar(select(func.count(OutboxEntry.seq))) == 0
    finally:
        close(device)


@pytest.mark.parametrize("order", ["instructor first", "lab staff first"])
def test_offline_edits_on_two_devices_sync_in_both_orders(live: dict[str, Any], order: str) -> None:
    ids = seed(live["app"])
    office, lab = enrol(live, "teach1"), enrol(live, "lab1")
    first_student, second_student = ids["students"][:2]
    offline_marks(
        office,
        ids["instructor"],
        [(ids["exam"], first_student, "77"), (ids["lab"], second_student, "5")],
    )
    # The lab staff's edit of the same mark comes later by more than the clocks' precision.
    edited = time.time()
    while time.time() < edited + 1.1:
        time.sleep(0.01)
    offline_marks(
        lab, ids["lab_staff"], [(ids["lab"], second_student, "8"), (ids["lab"], first_student, "9")]
    )
    devices = [office, lab] if order == "instructor first" else [lab, office]
    for data_dir in devices + devices:
        synced = run_device(data_dir, "sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert synced.stdout.startswith("Synced: pushed ")
    assert points(live["app"], ids["exam"], first_student) == 77
    assert points(live["app"], ids["lab"], second_student) == 8
    assert points(live["app"], ids["lab"], first_student) == 9
    for data_dir in devices:
        check_replica(live, data_dir)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(
                f"the sync ended before {what}: {process.stdout and process.stdout.read()}"
            )
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _query(data_dir: Path, sql: str) -> Any:
    connection = sqlite3.connect(data_dir / "portal.db", timeout=30)
    try:
        return connection.execute(sql).fetchone()
    finally:
        connection.close()


def test_a_client_killed_mid_push_then_restarted_loses_and_duplicates_nothing(
    live: dict[str, Any],
) -> None:
    ids = seed(live["app"], students=150)
    office = enrol(live, "teach1")
    wanted = [
        (assessment, student, str((n % 9) + 1))
        for n, student in enumerate(ids["students"])
        for assessment in (ids["exam"], ids["lab"])
    ]
    offline_marks(office, ids["instructor"], wanted)
    total = _query(office, "SELECT count(*) FROM sync_outbox")[0]
    assert total == len(wanted) == 300
    process = subprocess.Popen(
        device_command(office, "sync"), env=device_env(), stdout=subprocess.PIPE, text=True
    )
    _wait_for(
        lambda: _query(office, "SELECT count(*) FROM sync_outbox")[0] < total,
        process,
        "the first batch was acknowledged",
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = _query(office, "SELECT count(*) FROM sync_outbox")[0]
    assert 0 < left < total, "killed mid-push"
    synced = run_device(office, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    with live["app"].app_context():
        db = _db.session
        assert db.scalar(select(func.count(Mark.id))) == len(wanted)
        assert db.scalar(select(func.count(ProcessedChange.change_id))) == len(wanted)
        for assessment, student, value in wanted[::37]:
            assert points(live["app"], assessment, student) == float(value)
        db.rollback()
    check_replica(live, office)


def test_a_client_killed_mid_pull_then_restarted_holds_everything_once(
    live: dict[str, Any],
) -> None:
    ids = seed(live["app"], students=1200)  # well over a page (2,000 rows) for an admin
    with live["app"].app_context():
        db = _db.session
        capture.attribute_to(db, ids["instructor"])
        from portal.grading.services import set_mark

        instructor = db.get(User, ids["instructor"])
        exam = db.get(Assessment, ids["exam"])
        for n, student in enumerate(ids["students"][:600]):
            set_mark(db, instructor, exam, student, n % 100)
        db.commit()
    admin = live["root"] / "device-admin"
    made = subprocess.run(
        server_command("enrolment-code", "create", "--user", "admin1"),
        env=live["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    code = made.stdout.strip().splitlines()[-1]
    process = subprocess.Popen(
        device_command(admin, "enrol", "--server", live["url"], "--code", code),
        env=device_env(),
        stdout=subprocess.PIPE,
        text=True,
    )

    def part_way() -> bool:
        try:
            row = _query(admin, "SELECT pull_upto FROM sync_state")
        except sqlite3.Error:
            return False
        return row is not None and row[0] is not None

    _wait_for(part_way, process, "a first page was stored")
    process.send_signal(signal.SIGKILL)
    process.wait()
    cursor, upto = _query(admin, "SELECT cursor, pull_upto FROM sync_state")
    assert cursor == 0 and upto is not None, "killed mid-pull: the cursor has not moved yet"
    synced = run_device(admin, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    with live["app"].app_context():
        newest = _db.session.scalar(select(func.max(ChangeLogEntry.seq)))
        _db.session.rollback()
    assert _query(admin, "SELECT cursor, pull_upto FROM sync_state") == (newest, None)
    assert _query(admin, "SELECT count(*) FROM users")[0] == 1200 + 3
    check_replica(live, admin)


def test_a_revoked_device_is_refused_and_its_changes_exported(live: dict[str, Any]) -> None:
    from portal.models import Device as DeviceRow

    ids = seed(live["app"])
    office = enrol(live, "teach1")
    offline_marks(office, ids["instructor"], [(ids["exam"], ids["students"][0], "64")])
    with live["app"].app_context():
        db = _db.session
        device = db.scalar(select(DeviceRow))
        admin = db.scalar(select(User).filter_by(username="admin1"))
        enrolment.revoke_device(db, device, actor=admin, now=datetime.now(UTC))
        db.commit()
    refused = run_device(office, "sync")
    assert refused.returncode == 11, refused.stdout + refused.stderr
    assert "revoked by an administrator" in refused.stdout + refused.stderr
    assert "1 change(s) waiting on this computer" in refused.stdout + refused.stderr
    exported = run_device(office, "sync", "--export", str(live["root"] / "unsent.json"))
    assert exported.returncode == 0, exported.stderr
    document = json.loads((live["root"] / "unsent.json").read_text())
    assert [c["fields"]["points"] for c in document["changes"]] == [64]
    assert _query(office, "SELECT count(*) FROM sync_outbox")[0] == 1
    assert points(live["app"], ids["exam"], ids["students"][0]) is None


def test_an_old_protocol_is_refused_with_a_clear_message(live: dict[str, Any]) -> None:
    seed(live["app"])
    office = enrol(live, "teach1")
    credential = _query(office, "SELECT credential FROM sync_state")[0]
    response = httpx.post(
        f"{live['url']}/sync/v1/pull",
        json={"cursor": 0},
        headers={"Authorization": f"Bearer {credential}", "X-Sync-Protocol": "0"},
        timeout=30,
    )
    assert response.status_code == 426
    assert "too old for the campus server" in response.json()["detail"]
    synced = run_device(office, "sync")  # the current client still gets through
    assert synced.returncode == 0, synced.stderr
    with live["app"].app_context():
        assert _db.session.scalar(select(func.count(Section.id))) == 1


def test_two_copies_on_one_computer_are_told_apart(live: dict[str, Any]) -> None:
    """`campus-portal enrol --name` names the copy on the server; without it the copy proposes
    the person's account on the computer and the computer's name; the server keeps its OS."""
    import getpass
    import platform

    seed(live["app"], students=1)
    codes = []
    for _ in range(2):
        made = subprocess.run(
            server_command("enrolment-code", "create", "--user", "teach1"),
            env=live["env"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        codes.append(made.stdout.strip().splitlines()[-1])
    named = run_device(
        live["root"] / "named", "enrol", "--server", live["url"], "--code", codes[0],
        "--name", "Office PC (Terry)",
    )  # fmt: skip
    assert named.returncode == 0, named.stdout + named.stderr
    default = run_device(
        live["root"] / "default", "enrol", "--server", live["url"], "--code", codes[1]
    )
    assert default.returncode == 0, default.stdout + default.stderr
    with live["app"].app_context():
        from portal.models import Device as DeviceRow

        devices = {row.name: row for row in _db.session.scalars(select(DeviceRow))}
    assert set(devices) == {"Office PC (Terry)", f"{getpass.getuser()}@{platform.node()}"}
    for row in devices.values():
        assert row.os_name and row.os_name == sync_client_os()


def sync_client_os() -> str:
    from portal.sync.device.client import operating_system

    return operating_system()


def new_code(live: dict[str, Any], username: str) -> str:
    made = subprocess.run(
        server_command("enrolment-code", "create", "--user", username),
        env=live["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def test_a_revoked_copy_enrolled_again_with_a_new_code_sends_what_waits(
    live: dict[str, Any],
) -> None:
    """The same data folder, revoked with two marks waiting, enrolled again with a new code:
    both marks are pushed as their author's, the one the server changed later meanwhile is kept
    as a conflict, and the copy holds the server's data again."""
    from portal.grading.services import set_mark
    from portal.models import AuditEntry, SyncConflict
    from portal.models import Device as DeviceRow

    ids = seed(live["app"])
    office = enrol(live, "teach1")
    offline_marks(
        office,
        ids["instructor"],
        [(ids["exam"], ids["students"][0], "64"), (ids["lab"], ids["students"][1], "7")],
    )
    with live["app"].app_context():
        db = _db.session
        admin = db.scalar(select(User).filter_by(username="admin1"))
        admin_id = admin.id
        enrolment.revoke_device(
            db, db.scalar(select(DeviceRow)), actor=admin, now=datetime.now(UTC)
        )
        db.commit()
    refused = run_device(office, "sync")
    assert refused.returncode == 11, refused.stdout + refused.stderr
    assert "campus-portal enrol" in refused.stderr
    with live["app"].app_context():  # later than the device's edit: this one stays
        db = _db.session
        capture.attribute_to(db, admin_id)
        set_mark(
            db,
            db.get(User, admin_id),
            db.get(Assessment, ids["exam"]),
            ids["students"][0],
            Decimal("80"),
        )
        db.commit()
    again = ["enrol", "--server", live["url"], "--code"]
    stranger = run_device(office, *again, new_code(live, "lab1"))
    assert stranger.returncode == 13, stranger.stdout + stranger.stderr
    assert "That code is for lab1, who has not used this computer" in stranger.stderr
    assert "2 change(s) waiting on this computer are kept." in stranger.stderr
    enrolled = run_device(office, *again, new_code(live, "teach1"))
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    assert "Synced: pushed 2, " in enrolled.stdout and ", conflicts 1" in enrolled.stdout
    assert points(live["app"], ids["lab"], ids["students"][1]) == 7
    assert points(live["app"], ids["exam"], ids["students"][0]) == 80
    with live["app"].app_context():
        db = _db.session
        conflict = db.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.kept_value, conflict.lost_value) == ("superseded", 80, 64)
        assert conflict.author_id == ids["instructor"]
        assert db.scalar(select(func.count(DeviceRow.id))) == 1
        assert db.scalar(select(DeviceRow.revoked_at)) is None
        assert (
            db.scalar(
                select(func.count(AuditEntry.id)).filter_by(action="sync.device_enrolled_again")
            )
            == 1
        )
        db.rollback()
    check_replica(live, office)
    connected = run_device(office, *again, new_code(live, "teach1"))
    assert connected.returncode == 13, connected.stdout + connected.stderr
    assert "still connected to the campus server" in connected.stderr
    assert "change(s) waiting" not in connected.stderr  # nothing waits: nothing said of it


class _StandIn(http.server.BaseHTTPRequestHandler):
    """What answers at an address that is not (or not only) the portal: a proxy whose portal is
    down (502, as nginx says it), or a Wi-Fi log-in page answering every address (200, HTML)."""

    status = 502

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body><h1>Sign in to the guest Wi-Fi</h1></body></html>"
        if self.status == 502:
            body = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[Callable[[int], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(status: int) -> str:
        handler = type("Handler", (_StandIn,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_enrol_and_sync_exit_with_the_codes_the_readme_lists(
    live: dict[str, Any], stand_in: Callable[[int], str]
) -> None:
    """Each exit code of the README's table, from the real command line, and the note about
    waiting changes only when some wait."""
    ids = seed(live["app"])
    root = live["root"]
    code = new_code(live, "teach1")

    def enrol_new(name: str, server: str, code: str = code) -> subprocess.CompletedProcess[str]:
        return run_device(root / name, "enrol", "--server", server, "--code", code)

    closed = f"http://127.0.0.1:{free_port()}"
    cases = {
        10: enrol_new("a", closed),
        14: enrol_new("b", stand_in(502)),
        15: enrol_new("c", "portal.campus.example"),
        16: enrol_new("d", stand_in(200)),
    }
    for expected, result in cases.items():
        assert result.returncode == expected, (expected, result.stdout + result.stderr)
        assert "next sync" not in result.stderr and "waiting" not in result.stderr
    assert "cannot be reached" in cases[10].stderr
    assert "had a problem (502)" in cases[14].stderr
    assert "must start with https://" in cases[15].stderr
    assert "not JSON" in cases[16].stderr
    office = enrol_new("office", live["url"])
    assert office.returncode == 0, office.stdout + office.stderr
    used = enrol_new("e", live["url"])
    assert used.returncode == 13, used.stdout + used.stderr
    assert "already used" in used.stderr
    elsewhere = run_device(root / "office", "enrol", "--server", closed, "--code", code)
    assert elsewhere.returncode == 15, elsewhere.stdout + elsewhere.stderr
    assert f"This computer is connected to {live['url']}" in elsewhere.stderr
    never = run_device(root / "f", "sync")
    assert never.returncode == 15, never.stdout + never.stderr
    assert "not connected to a campus server" in never.stderr
    newer = subprocess.run(  # a copy newer than the server: protocol 3 against a server of 2
        [
            sys.executable,
            "-c",
            "import sys; from portal.sync import protocol; protocol.PROTOCOL_VERSION = 3; "
            "from desktop.launcher import main; sys.exit(main(sys.argv[1:]))",
            "--data-dir",
            str(root / "office"),
            "sync",
        ],
        env=device_env() | {"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert newer.returncode == 12, newer.stdout + newer.stderr
    assert "newer than the campus server's" in newer.stderr
    assert "kept" not in newer.stderr  # nothing waits on this copy: nothing to say about it
    offline_marks(root / "office", ids["instructor"], [(ids["exam"], ids["students"][0], "55")])
    connection = sqlite3.connect(root / "office" / "portal.db")
    with connection:  # the server moved or is down: the change waits
        connection.execute("UPDATE sync_state SET server_url = ?", (closed,))
    connection.close()
    waiting = run_device(root / "office", "sync")
    assert waiting.returncode == 10, waiting.stdout + waiting.stderr
    assert (
        "1 change(s) waiting on this computer are kept and will be sent at the next sync."
        in waiting.stderr
    )
