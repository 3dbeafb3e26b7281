"""The eleven sync invariants of DESIGN.md ("Sync: what must always hold"), one or more tests
each, in one process: device apps over their own SQLite files talk HTTP to the server app
through httpx's WSGI transport; where a database race matters the server runs on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import event, func, select, text, update

from portal.extensions import db as _db
from portal.models import (
    Assessment,
    AttendanceRecord,
    AuditEntry,
    ChangeLogEntry,
    Course,
    LabSession,
    Mark,
    OutboxEntry,
    ProcessedChange,
    Registration,
    Section,
    SnapshotSeen,
    StoredFile,
    Submission,
    SyncConflict,
    SyncState,
    User,
)
from portal.sync import capture, hlc, protocol
from portal.sync.device import client as sync_client
from portal.sync.device import outbox as device_outbox
from portal.sync.device import pull as device_pull
from portal.sync.server import enrolment
from portal.sync.server import files as server_files
from portal.sync.server import pull as server_pull
from portal.sync.tables import SYNCED_TABLES
from tests import factories
from tests.conftest import make_app
from tests.sync.conftest import (
    SERVER_URL,
    Campus,
    Device,
    as_user,
    assert_replica_matches,
    device_accounts,
    enrolment_code,
    wsgi_client,
)

ON_POSTGRESQL = pytest.mark.parametrize("server_database", ["postgresql"], indirect=True)
ON_BOTH = pytest.mark.parametrize("server_database", ["sqlite", "postgresql"], indirect=True)


# --- Helpers ---------------------------------------------------------------------------------


class Flaky(httpx.BaseTransport):
    """The server app over WSGI, with replies that can be lost after the server handled the
    request (the connection drops on the way back), and a record of what was sent."""

    def __init__(self, app: Flask) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.lose: dict[str, int] = {}  # path -> how many replies to lose
        self.lose_after: dict[str, int] = {}  # path -> let this many through first
        self.sent: list[tuple[str, str, int]] = []  # (method, path, bytes of body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append((request.method, request.url.path, len(body)))
        response = self.inner.handle_request(request)
        path = request.url.path
        if self.lose_after.get(path, 0) > 0:
            self.lose_after[path] -= 1
        elif self.lose.get(path, 0) > 0:
            self.lose[path] -= 1
            response.read()
            response.close()  # the server app finishes the request (its session ends)
            raise httpx.ReadError("connection lost", request=request)
        return response

    def bytes_sent(self, method: str, prefix: str) -> int:
        return sum(size for m, path, size in self.sent if m == method and path.startswith(prefix))


@pytest.fixture
def flaky_device(
    server: Flask, make_device: Callable[..., Device]
) -> Callable[[str], tuple[Device, Flaky]]:
    """flaky_device("teach1") -> a device of that account whose replies can be lost, and the
    transport that loses them."""

    def make(username: str) -> tuple[Device, Flaky]:
        transport = Flaky(server)
        device = make_device(username, http=httpx.Client(transport=transport, base_url=SERVER_URL))
        return device, transport

    return make


@contextmanager
def acting(device: Device, user_id: Any) -> Iterator[Any]:
    """The device's session, its changes attributed to `user_id` (as a signed-in person's)."""
    with device.session():
        as_user(device.app, user_id)
        yield _db.session


def on_server(server: Flask) -> Any:
    return server.app_context()


@contextmanager
def acting_on_server(server: Flask, user_id: Any) -> Iterator[Any]:
    """The server's session, its changes attributed to `user_id` (as a signed-in person's)."""
    with on_server(server):
        capture.attribute_to(_db.session, user_id)
        yield _db.session


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context():
        return int(_db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def state_of(device: Device) -> Any:
    with device.session():
        return _db.session.execute(select(SyncState)).one()[0]


def transport_of(device: Device) -> sync_client.Transport:
    state = state_of(device)
    return sync_client.Transport(state.server_url, state.credential, device.http)


def change(
    table: str,
    row_id: Any,
    fields: dict[str, Any],
    *,
    actor: Any,
    op: str = "insert",
    base_cursor: int = 0,
    stamp: str | None = None,
) -> dict[str, Any]:
    """A pushed change as a device's outbox would send it (or as a forger would write it)."""
    return {
        "change_id": str(uuid.uuid4()),
        "table": table,
        "row_id": str(row_id),
        "op": op,
        "fields": {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in fields.items()},
        "hlc": stamp or hlc.tick("", datetime.now(UTC), "forger"),
        "base_cursor": base_cursor,
        "actor_id": str(actor) if actor else None,
    }


def push_raw(device: Device, changes: list[dict[str, Any]]) -> list[dict[str, str]]:
    return transport_of(device).json("POST", "/push", {"changes": changes})["results"]


def local_mark(device: Device, actor_id: Any, assessment_id: Any, student_id: Any, raw: str) -> Any:
    from portal.grading.services import parse_points, set_mark

    with acting(device, actor_id) as db:
        mark = set_mark(
            db,
            db.get(User, actor_id),
            db.get(Assessment, assessment_id),
            student_id,
            parse_points(raw),
        )
        db.commit()
        return mark.id


def server_mark(
    server: Flask, actor_id: Any, assessment_id: Any, student_id: Any, raw: str
) -> None:
    from portal.grading.services import parse_points, set_mark

    with acting_on_server(server, actor_id) as db:
        set_mark(
            db,
            db.get(User, actor_id),
            db.get(Assessment, assessment_id),
            student_id,
            parse_points(raw),
        )
        db.commit()


def points_on(app: Flask, assessment_id: Any, student_id: Any) -> float | None:
    with app.app_context():
        mark = _db.session.scalar(
            select(Mark).filter_by(assessment_id=assessment_id, student_id=student_id)
        )
        return mark.points if mark else None


def outbox(device: Device) -> list[Any]:
    with device.session():
        return list(_db.session.scalars(select(OutboxEntry).order_by(OutboxEntry.seq)))


def new_section(server: Flask, *, capacity: int, waitlist: int, **fields: Any) -> Any:
    with on_server(server):
        section = factories.make_section(
            _db.session, capacity=capacity, waitlist_capacity=waitlist, **fields
        )
        _db.session.commit()
        return section.id


def server_register(server: Flask, student_id: Any, section_id: Any) -> str:
    from portal.registration.services import register

    with acting_on_server(server, student_id) as db:
        result = register(
            db, db.get(User, student_id), db.get(Section, section_id), now=datetime.now(UTC)
        )
        db.commit()
        return result.status


def server_delete_assessment(server: Flask, actor_id: Any, assessment_id: Any) -> None:
    from portal.grading.services import delete_assessment

    with acting_on_server(server, actor_id) as db:
        delete_assessment(
            db, db.get(User, actor_id), db.get(Assessment, assessment_id), now=datetime.now(UTC)
        )
        db.commit()


def new_student(server: Flask, username: str) -> Any:
    with on_server(server):
        user = factories.make_user(_db.session, "student", username=username)
        _db.session.commit()
        return user.id


# --- 1. A local change and its outbox entry are one transaction --------------------------------


def test_a_local_change_writes_its_outbox_entry_and_a_rolled_back_one_writes_none(
    campus: Campus, instructor_laptop: Device
) -> None:
    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "64")
    entries = outbox(instructor_laptop)
    assert [(e.table_name, e.op, e.fields["points"]) for e in entries] == [("marks", "insert", 64)]
    assert entries[0].actor_id == campus.instructor

    from portal.grading.services import set_mark

    with acting(instructor_laptop, campus.instructor) as db:
        set_mark(
            db,
            db.get(User, campus.instructor),
            db.get(Assessment, campus.assessment),
            campus.students[1],
            80,
        )
        db.flush()  # the outbox entry is written with the change...
        assert db.scalar(select(func.count(OutboxEntry.seq))) == 2
        db.rollback()  # ...and goes with it
    assert len(outbox(instructor_laptop)) == 1
    assert points_on(instructor_laptop.app, campus.assessment, campus.students[1]) is None


@pytest.mark.parametrize("crash_at", ["marks", "sync_outbox"])
def test_a_crash_between_the_change_and_its_outbox_entry_leaves_neither(
    campus: Campus, instructor_laptop: Device, crash_at: str
) -> None:
    """Both rows are written on one connection in one transaction: the process dying after
    either statement (here: an exception right after it ran) commits neither."""
    statements: list[tuple[int, str]] = []

    class Crash(Exception):
        pass

    def watch(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append((id(conn.connection.dbapi_connection), statement.split()[0].upper()))
        if statement.startswith(f"INSERT INTO {crash_at}"):
            raise Crash

    engine = instructor_laptop.engine
    event.listen(engine, "after_cursor_execute", watch)
    try:
        with pytest.raises(Crash):
            local_mark(
                instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "55"
            )
    finally:
        event.remove(engine, "after_cursor_execute", watch)
    assert len({connection for connection, _ in statements}) == 1, "one connection for both"
    assert "COMMIT" not in [verb for _, verb in statements]
    assert outbox(instructor_laptop) == []
    assert points_on(instructor_laptop.app, campus.assessment, campus.students[0]) is None


def test_a_change_made_through_a_page_is_in_the_outbox(
    campus: Campus, newcomer_laptop: Device
) -> None:
    """Capture is in the session, not in the sync code: a web form's change is seen too."""
    from tests.conftest import post_form

    web = newcomer_laptop.app.test_client()
    response = post_form(web, "/login", {"username": "stud3", "password": factories.PASSWORD})
    assert response.status_code == 302
    with newcomer_laptop.session():
        section = _db.session.get(Section, campus.other_section)
        assert section is not None
    response = post_form(web, f"/sections/{campus.other_section}/register", {}, token_from="/")
    assert response.status_code == 302
    [entry] = [e for e in outbox(newcomer_laptop) if e.table_name == "registrations"]
    assert entry.op == "insert" and entry.actor_id == campus.students[2]
    assert entry.fields["status"] == "enrolled"


# --- 2. UUID row ids made on the device; deletes are tombstones ---------------------------------


def test_rows_made_offline_keep_their_device_made_uuid_on_the_server(
    campus: Campus, lab_laptop: Device, server: Flask
) -> None:
    from portal.attendance.services import LabSessionInput, create_lab_session

    with acting(lab_laptop, campus.lab_staff) as db:
        created = create_lab_session(
            db,
            db.get(User, campus.lab_staff),
            db.get(Section, campus.section),
            LabSessionInput(
                held_on=datetime.now(UTC).date(),
                starts_at=datetime(2000, 1, 1, 9).time(),
                ends_at=datetime(2000, 1, 1, 11).time(),
                room="B12",
            ),
        )
        db.commit()
        made_here = created.id
    assert isinstance(made_here, uuid.UUID) and made_here.version == 4
    lab_laptop.sync()
    with on_server(server):
        assert _db.session.get(LabSession, made_here).room == "B12"


def test_a_delete_travels_as_a_tombstone_and_a_device_cannot_hard_delete(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    server_mark(server, campus.instructor, campus.lab, campus.students[0], "7")
    laptop = make_device("teach1")
    server_delete_assessment(server, campus.instructor, campus.lab)
    laptop.sync()
    with laptop.session():
        tombstone = _db.session.get(Assessment, campus.lab)
        assert tombstone is not None and tombstone.deleted_at is not None
    # A row removed outright on the device is not removed on the server, and comes back.
    with acting(laptop, campus.instructor) as db:
        mark = db.scalar(select(Mark).filter_by(assessment_id=campus.lab))
        db.delete(mark)
        db.commit()
    assert [e.op for e in outbox(laptop)] == ["delete"]
    summary = laptop.sync()
    assert summary.refused == 1
    assert points_on(server, campus.lab, campus.students[0]) == 7
    assert points_on(laptop.app, campus.lab, campus.students[0]) == 7
    assert_replica_matches(server, laptop)


# --- 3. Push is idempotent ----------------------------------------------------------------------


def test_a_lost_reply_then_replay_returns_the_first_answer_and_applies_nothing_twice(
    campus: Campus, flaky_device: Callable[[str], tuple[Device, Flaky]], server: Flask
) -> None:
    from portal.registration.services import register

    laptop, transport = flaky_device("stud3")
    with acting(laptop, campus.students[2]) as db:
        register(
            db,
            db.get(User, campus.students[2]),
            db.get(Section, campus.other_section),
            now=datetime.now(UTC),
        )
        db.commit()
    [entry] = outbox(laptop)
    transport.lose["/sync/v1/push"] = 1
    with pytest.raises(sync_client.SyncError) as lost:
        laptop.sync()
    assert lost.value.reason == "unreachable"
    assert [e.change_id for e in outbox(laptop)] == [entry.change_id]  # kept: no answer came
    with on_server(server):
        section = _db.session.get(Section, campus.other_section)
        assert section.enrolled_count == 1
        first = _db.session.get(ProcessedChange, (state_of(laptop).device_id, entry.change_id))
        assert first is not None and first.status == "applied"
    log_before = count(server, ChangeLogEntry)

    summary = laptop.sync()  # the replay
    assert summary.pushed == 1 and summary.refused == 0
    assert outbox(laptop) == []
    with on_server(server):
        assert _db.session.get(Section, campus.other_section).enrolled_count == 1
        assert (
            _db.session.scalar(
                select(func.count(Registration.id)).filter_by(student_id=campus.students[2])
            )
            == 1
        )
    assert count(server, SyncConflict) == 0
    assert count(server, ChangeLogEntry) == log_before  # nothing applied again
    answers = push_raw(laptop, [entry_as_change(entry)])
    assert answers == [
        {"change_id": str(entry.change_id), "status": "applied", "detail": "Enrolled."}
    ]


def entry_as_change(entry: Any) -> dict[str, Any]:
    return {
        "change_id": str(entry.change_id),
        "table": entry.table_name,
        "row_id": str(entry.row_id),
        "op": entry.op,
        "fields": entry.fields,
        "hlc": entry.hlc,
        "base_cursor": entry.base_cursor,
        "actor_id": str(entry.actor_id),
    }


@ON_BOTH
def test_two_identical_pushes_at_once_apply_once(
    campus: Campus, newcomer_laptop: Device, server: Flask
) -> None:
    batch = [
        change(
            "registrations",
            uuid.uuid4(),
            {
                "student_id": campus.students[2],
                "section_id": campus.other_section,
                "status": "enrolled",
            },
            actor=campus.students[2],
        )
    ]
    credential = state_of(newcomer_laptop).credential
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def send(slot: int) -> None:
        with wsgi_client(server) as http:
            transport = sync_client.Transport(SERVER_URL, credential, http)
            barrier.wait()
            answers[slot] = transport.json("POST", "/push", {"changes": batch})["results"]

    threads = [threading.Thread(target=send, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers[0] == answers[1]
    assert answers[0][0]["status"] == "applied"
    with on_server(server):
        assert _db.session.get(Section, campus.other_section).enrolled_count == 1
        assert _db.session.scalar(select(func.count(ProcessedChange.change_id))) == 1
    assert count(server, Registration, Registration.student_id == campus.students[2]) == 1
    assert count(server, SyncConflict) == 0


# --- 4. Pull by a server cursor; never skip a late commit ---------------------------------------


class ShiftedClock:
    """The device's wall clock, `offset` away from the real one (datetime and time)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        shift = self.offset

        class DeviceDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
                return datetime.now(tz) + shift

        class DeviceTime:
            @staticmethod
            def time() -> float:
                return time.time() + shift.total_seconds()

        monkeypatch.setattr(capture, "datetime", DeviceDatetime)
        monkeypatch.setattr(sync_client, "time", DeviceTime)


def test_the_pull_cursor_is_the_servers_number_whatever_the_device_clock_says(
    campus: Campus,
    instructor_laptop: Device,
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ShiftedClock(timedelta(days=-400)).install(monkeypatch)
    server_mark(server, campus.instructor, campus.assessment, campus.students[1], "42")
    http_bodies: list[dict[str, Any]] = []
    real_json = sync_client.Transport.json

    def spy(self: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
        if path == "/pull":
            http_bodies.append(body)
        return real_json(self, method, path, body)

    monkeypatch.setattr(sync_client.Transport, "json", spy)
    instructor_laptop.sync()
    assert points_on(instructor_laptop.app, campus.assessment, campus.students[1]) == 42
    with on_server(server):
        newest = _db.session.scalar(select(func.max(ChangeLogEntry.seq)))
    assert state_of(instructor_laptop).cursor == newest
    pull_keys = {
        *("cursor", "fingerprint", "upto", "table", "after", "snapshot", "pending", "limit"),
        "accounts",  # echoed from the page before: which accounts the pull began with
    }
    assert all(set(body) <= pull_keys for body in http_bodies)  # nothing from the clock
    assert http_bodies[0]["cursor"] < newest


def test_the_cursor_moves_only_with_the_last_page_and_an_abandoned_pull_resumes(
    campus: Campus,
    flaky_device: Callable[[str], tuple[Device, Flaky]],
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    laptop, transport = flaky_device("teach1")
    cursor = state_of(laptop).cursor
    for n, student in enumerate(campus.students[:2]):
        server_mark(server, campus.instructor, campus.assessment, student, str(50 + n))
        server_mark(server, campus.instructor, campus.lab, student, str(5 + n))
    monkeypatch.setattr(server_pull, "PAGE_ROWS", 1)
    transport.lose_after["/sync/v1/pull"] = 2
    transport.lose["/sync/v1/pull"] = 1
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    state = state_of(laptop)
    assert state.cursor == cursor  # not moved: the pull did not finish
    assert state.pull_upto is not None and state.pull_upto > cursor
    held = count(laptop.app, Mark)
    assert 0 < held < 4  # the pages that arrived are kept, with where the pull stood
    laptop.sync()
    assert state_of(laptop).cursor >= state.pull_upto
    assert count(laptop.app, Mark) == 4
    assert_replica_matches(server, laptop)


def test_a_page_asked_for_ahead_that_fails_leaves_the_device_as_after_the_last_page_written(
    campus: Campus,
    flaky_device: Callable[[str], tuple[Device, Flaky]],
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The device asks for the next page while it writes the current one: when that request
    fails, the pages written before it stay whole, with where the pull stood after the last of
    them, and nothing of the lost page is written."""
    laptop, transport = flaky_device("teach1")
    cursor = state_of(laptop).cursor
    for n, student in enumerate(campus.students[:2]):
        server_mark(server, campus.instructor, campus.assessment, student, str(60 + n))
        server_mark(server, campus.instructor, campus.lab, student, str(6 + n))
    monkeypatch.setattr(server_pull, "PAGE_ROWS", 1)
    written: list[dict[str, Any]] = []
    real_apply = device_pull.apply_page

    def recording(connection: Any, page: dict[str, Any], **kwargs: Any) -> int:
        pulled = real_apply(connection, page, **kwargs)
        written.append(page)
        return pulled

    monkeypatch.setattr(device_pull, "apply_page", recording)
    transport.lose_after["/sync/v1/pull"] = 2
    transport.lose["/sync/v1/pull"] = 1
    before = len(transport.sent)
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    pulls = [path for _method, path, _size in transport.sent[before:] if path == "/sync/v1/pull"]
    assert len(pulls) == 3 and len(written) == 2  # the third, asked for ahead, was lost
    state = state_of(laptop)
    last = written[-1]
    assert state.cursor == cursor
    assert (state.pull_upto, state.pull_table, state.pull_after) == (
        last["upto"],
        last["next"]["table"],
        last["next"]["after"],
    )
    assert written[0]["columns"]["marks"][:3] == ["assessment_id", "student_id", "points"]
    sent = {(row[0], row[1]) for page in written for row in page["rows"].get("marks", [])}
    assert len(sent) == 2
    for n, student in enumerate(campus.students[:2]):
        for assessment, points in ((campus.assessment, 60 + n), (campus.lab, 6 + n)):
            # a mark of the pages written is on the device; one of the lost page's is not yet
            arrived = points_on(laptop.app, assessment, student) == points
            assert arrived == ((str(assessment), str(student)) in sent)
    laptop.sync()
    assert state_of(laptop).cursor >= last["upto"]
    assert_replica_matches(server, laptop)


@ON_POSTGRESQL
def test_a_transaction_that_commits_late_is_not_skipped(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """T1 writes a change and is held open inside its commit; T2 writes another; a pull runs
    meanwhile; then T1 commits. Every change must reach the device."""
    in_commit = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with on_server(server):
                db = _db.session

                def hold(_session: Any) -> None:  # runs after capture numbered the change
                    in_commit.set()
                    release.wait(30)

                capture.attribute_to(db, campus.instructor)
                from portal.grading.services import set_mark

                set_mark(
                    db,
                    db.get(User, campus.instructor),
                    db.get(Assessment, campus.assessment),
                    campus.students[0],
                    11,
                )
                event.listen(db(), "before_commit", hold)
                db.commit()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    def fast_writer() -> None:  # touches other rows: only the change log orders the two
        try:
            with on_server(server):
                db = _db.session
                section = db.get(Section, campus.other_section)
                section.course.title = "Renamed while T1 was committing"
                db.commit()
        except BaseException as exc:
            errors.append(exc)

    slow = threading.Thread(target=slow_writer)
    slow.start()
    assert in_commit.wait(30)
    fast = threading.Thread(target=fast_writer)
    fast.start()
    # Wait until the second writer has either committed or is queued for a lock.
    deadline = time.monotonic() + 30
    with on_server(server):
        while fast.is_alive() and time.monotonic() < deadline:
            waiting = _db.session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            _db.session.rollback()
            if waiting:
                break
    assert time.monotonic() < deadline
    instructor_laptop.sync()  # a pull while T1 is open (and T2 committed or queued behind it)
    release.set()
    slow.join(30)
    fast.join(30)
    assert not errors, errors
    instructor_laptop.sync()
    assert points_on(instructor_laptop.app, campus.assessment, campus.students[0]) == 11
    with instructor_laptop.session():
        course = _db.session.get(Section, campus.other_section).course
        assert course.title == "Renamed while T1 was committing"
    assert_replica_matches(server, instructor_laptop)


# --- 5. The server re-checks every pushed change ------------------------------------------------


def test_a_students_device_cannot_push_a_mark(
    campus: Campus, student_laptop: Device, server: Flask
) -> None:
    forged = uuid.uuid4()
    with student_laptop.session():  # written into the device's database behind the portal's back
        _db.session.execute(
            Mark.__table__.insert().values(
                id=forged,
                assessment_id=campus.assessment,
                student_id=campus.students[0],
                points=100.0,
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
        _db.session.commit()
    [answer] = push_raw(
        student_laptop,
        [
            change(
                "marks",
                forged,
                {
                    "assessment_id": campus.assessment,
                    "student_id": campus.students[0],
                    "points": 100,
                },
                actor=campus.students[0],
            )
        ],
    )
    assert answer["status"] == "refused"
    assert points_on(server, campus.assessment, campus.students[0]) is None
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.author_id) == ("refused", campus.students[0])
        assert conflict.lost_value["points"] == 100
    student_laptop.sync()  # the device is told to remove what the server never accepted
    assert points_on(student_laptop.app, campus.assessment, campus.students[0]) is None
    assert_replica_matches(server, student_laptop)


def test_a_pushed_mark_with_more_decimal_places_than_kept_is_refused_with_the_rule(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    [answer] = push_raw(
        instructor_laptop,
        [
            change(
                "marks",
                uuid.uuid4(),
                {
                    "assessment_id": campus.assessment,
                    "student_id": campus.students[0],
                    "points": 1.125,
                },
                actor=campus.instructor,
            )
        ],
    )
    assert answer["status"] == "refused"
    assert answer["detail"] == (
        "Marks are kept to 2 decimal places: 1.125 has more. Enter 1.12 or 1.13."
    )
    assert points_on(server, campus.assessment, campus.students[0]) is None  # not 1.12
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert conflict.lost_value["points"] == 1.125


def test_a_change_as_another_account_is_refused(
    campus: Campus, newcomer_laptop: Device, server: Flask
) -> None:
    [answer] = push_raw(
        newcomer_laptop,
        [
            change(
                "marks",
                uuid.uuid4(),
                {
                    "assessment_id": campus.assessment,
                    "student_id": campus.students[2],
                    "points": 99,
                },
                actor=campus.instructor,  # not an account of this device
            )
        ],
    )
    assert answer == {
        "change_id": answer["change_id"],
        "status": "refused",
        "detail": "The change was not made by an account of this device.",
    }
    assert count(server, Mark) == 0
    with on_server(server):  # kept for an administrator, on nobody's "My sync conflicts"
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.author_id) == ("refused", None)
        assert conflict.device_id is not None


def test_forged_tables_and_fields_are_refused_or_ignored(
    campus: Campus, newcomer_laptop: Device, server: Flask
) -> None:
    me = campus.students[2]
    answers = push_raw(
        newcomer_laptop,
        [
            change("sync_devices", uuid.uuid4(), {}, actor=me),
            change("users", me, {"role": "admin"}, actor=me, op="update"),
            change(
                "registrations",
                uuid.uuid4(),
                {
                    "student_id": me,
                    "section_id": campus.other_section,
                    "status": "enrolled",
                    "final_grade": "A",
                    "waitlist_position": 1,
                },
                actor=me,
            ),
            change("sections", campus.other_section, {"enrolled_count": 0}, actor=me, op="update"),
        ],
    )
    assert [a["status"] for a in answers] == ["refused", "refused", "applied", "refused"]
    assert answers[0]["detail"] == "Malformed change: unknown table 'sync_devices'"
    assert answers[1]["detail"] == "Accounts are changed on the campus server only."
    with on_server(server):
        assert _db.session.get(User, me).role == "student"
        registration = _db.session.scalar(select(Registration).filter_by(student_id=me))
        assert (registration.final_grade, registration.waitlist_position) == (None, None)
        assert _db.session.get(Section, campus.other_section).enrolled_count == 1


def test_a_forged_row_id_cannot_reach_another_students_registration(
    campus: Campus, newcomer_laptop: Device, server: Flask
) -> None:
    """Naming another student's registration by its id, as an update or as an "insert" whose
    fields claim to be one's own, changes nothing of theirs."""
    with on_server(server):
        theirs = _db.session.scalar(
            select(Registration.id).filter_by(student_id=campus.students[0])
        )
    mine = {"student_id": campus.students[2], "section_id": campus.section, "status": "dropped"}
    answers = push_raw(
        newcomer_laptop,
        [
            change("registrations", theirs, mine, actor=campus.students[2], op="update"),
            change("registrations", theirs, mine, actor=campus.students[2], op="insert"),
        ],
    )
    assert [a["status"] for a in answers] == ["refused", "refused"]
    with on_server(server):
        assert _db.session.get(Registration, theirs).status == "enrolled"
        assert _db.session.get(Section, campus.section).enrolled_count == 2


def test_a_widened_pull_request_gets_only_the_devices_scope(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    server_mark(server, campus.instructor, campus.assessment, campus.students[1], "77")
    laptop = make_device("stud1")
    transport = transport_of(laptop)
    with on_server(server):
        newest = _db.session.scalar(select(func.max(ChangeLogEntry.seq)))
    for forged in (
        {"cursor": 0, "fingerprint": "", "snapshot": True},
        {"cursor": 0, "upto": newest, "table": 0, "after": "", "snapshot": True},
        {"cursor": 0, "limit": 10**9},
    ):
        page = transport.json("POST", "/pull", forged)
        marks = rows_of(page, "marks")
        assert {m["student_id"] for m in marks} <= {str(campus.students[0])}
        users = rows_of(page, "users")
        assert str(campus.students[1]) not in {u["id"] for u in users}
    bad = transport.call
    with pytest.raises(sync_client.SyncError) as refused:
        bad("POST", "/pull", {"cursor": -1})
    assert str(refused.value) == "cursor must be a whole number."


@ON_BOTH
def test_a_cursor_the_server_never_issued_is_refused_with_a_clear_problem(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """A cursor (or a pull's bound) beyond the server's newest change is not answered with a
    page: 422, a problem that says so, and nothing about the device's scope."""
    with on_server(server):
        newest = _db.session.scalar(select(func.max(ChangeLogEntry.seq)))
    state = state_of(instructor_laptop)
    headers = {
        "Authorization": f"Bearer {state.credential}",
        "X-Sync-Protocol": str(protocol.PROTOCOL_VERSION),
    }
    for forged in (
        {"cursor": 10**30, "fingerprint": state.scope_fingerprint},
        {"cursor": newest + 1, "fingerprint": state.scope_fingerprint},
        {"cursor": 0, "upto": newest + 1, "table": 0, "after": "", "snapshot": True},
        {"cursor": newest, "upto": 10**30, "table": 3, "after": "", "snapshot": False},
    ):
        answer = instructor_laptop.http.post("/sync/v1/pull", json=forged, headers=headers)
        assert answer.status_code == 422, forged
        problem = answer.json()
        assert problem["type"] == protocol.UNKNOWN_CURSOR
        claimed = max(forged["cursor"], forged.get("upto", 0))
        assert problem["detail"].startswith(
            f"This server never issued change number {claimed} (its newest is {newest})"
        )
        assert "rows" not in problem
    for number in ("pending", "limit"):  # too large to keep or to fetch: the most there is
        answer = instructor_laptop.http.post(
            "/sync/v1/pull", json={"cursor": newest, number: 10**30}, headers=headers
        )
        assert answer.status_code == 200, answer.text
    pushed = instructor_laptop.http.post(
        "/sync/v1/push", json={"changes": [], "pending": 10**30}, headers=headers
    )
    assert pushed.status_code == 200, pushed.text


def test_a_device_whose_cursor_the_server_never_issued_starts_again_from_a_snapshot(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """The server's database went back to a backup: the device's cursor is beyond anything it
    issued. The device pulls its whole scope again; a row the server no longer holds leaves
    the device, and a change still waiting is kept and pushed."""
    ghost = local_mark(
        instructor_laptop, campus.instructor, campus.assessment, campus.students[1], "33"
    )
    instructor_laptop.sync()
    with on_server(server):  # the backup did not have it
        _db.session.execute(text("DELETE FROM marks"))
        _db.session.commit()
        newest = _db.session.scalar(select(func.max(ChangeLogEntry.seq)))
    with instructor_laptop.session():
        _db.session.execute(update(SyncState).values(cursor=newest + 40))
        _db.session.commit()
    local_mark(instructor_laptop, campus.instructor, campus.lab, campus.students[0], "7")
    summary = instructor_laptop.sync()
    assert summary.pushed == 1
    assert points_on(server, campus.lab, campus.students[0]) == 7
    with instructor_laptop.session():
        assert _db.session.get(Mark, ghost) is None
    with on_server(server):
        newest = _db.session.scalar(select(func.max(ChangeLogEntry.seq)))
    assert state_of(instructor_laptop).cursor == newest
    assert_replica_matches(server, instructor_laptop)


def test_a_snapshot_sends_rows_as_they_are_now_but_none_made_after_its_bound(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """A snapshot is fixed to the newest change-log number when it began (`upto`): a row that
    existed by then goes as it is now, edits made during the snapshot included; a row made
    after it waits for the next change pull."""
    with acting_on_server(server, campus.admin) as db:
        existing = factories.make_course(db, title="Before the snapshot").id
        db.commit()
    transport = transport_of(instructor_laptop)
    first = transport.json("POST", "/pull", {"cursor": 0, "fingerprint": "", "limit": 1})
    assert first["snapshot"] and not first["complete"]
    with acting_on_server(server, campus.admin) as db:
        db.get(Course, existing).title = "Renamed during the snapshot"
        made = factories.make_course(db, title="Made during the snapshot").id
        db.commit()
    rest = {
        "cursor": 0,
        "upto": first["upto"],
        "snapshot": True,
        "fingerprint": first["fingerprint"],
        "table": 0,
        "after": "",
    }
    courses = {row["id"]: row for row in rows_of(transport.json("POST", "/pull", rest), "courses")}
    assert courses[str(existing)]["title"] == "Renamed during the snapshot"
    assert str(made) not in courses
    later = transport.json(
        "POST", "/pull", {"cursor": first["upto"], "fingerprint": first["fingerprint"]}
    )
    assert not later["snapshot"]
    assert str(made) in {row["id"] for row in rows_of(later, "courses")}


def _past_the_users_table(
    transport: sync_client.Transport,
) -> tuple[dict[str, Any], set[str]]:
    """A snapshot pulled a row at a time until its users table is done: the last page, and
    the accounts sent."""
    page = transport.json("POST", "/pull", {"cursor": 0, "fingerprint": "", "limit": 1})
    sent = {row["id"] for row in rows_of(page, "users")}
    while page["next"]["table"] == 0:
        page = transport.json("POST", "/pull", {**_continue(page), "limit": 1})
        sent |= {row["id"] for row in rows_of(page, "users")}
    return page, sent


def _continue(page: dict[str, Any]) -> dict[str, Any]:
    fields = ("upto", "snapshot", "fingerprint")
    return {"cursor": 0, **{name: page[name] for name in fields}, **page["next"]}


def test_later_pages_of_a_snapshot_do_not_send_its_accounts_again_unless_the_scope_moved(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """The students a snapshot's users table sent are not sent again with the registrations
    and marks of later pages (for the accounts the pull began with, while nothing the scope
    is read from changed). A section given to the instructor during the snapshot brings its
    students with the rows that name them."""
    server_mark(server, campus.instructor, campus.assessment, campus.students[0], "61")
    transport = transport_of(instructor_laptop)
    page, sent = _past_the_users_table(transport)
    assert {str(campus.students[0]), str(campus.students[1])} <= sent
    rest = transport.json("POST", "/pull", _continue(page))
    assert rows_of(rest, "registrations") and rows_of(rest, "marks")
    assert rows_of(rest, "users") == []
    # A device that does not say which accounts the pull began with gets them again.
    unsaid = transport.json("POST", "/pull", {**_continue(page), "accounts": ""})
    assert {row["id"] for row in rows_of(unsaid, "users")} >= {str(campus.students[0])}

    with acting_on_server(server, campus.admin) as db:
        db.add(
            Registration(
                student_id=campus.students[2], section_id=campus.other_section, status="enrolled"
            )
        )
        db.commit()
    page, sent = _past_the_users_table(transport)
    assert str(campus.students[2]) not in sent
    with acting_on_server(server, campus.admin) as db:
        db.get(Section, campus.other_section).instructor_id = campus.instructor
        db.commit()
    rest = transport.json("POST", "/pull", _continue(page))
    assert str(campus.other_section) in {
        row["section_id"] for row in rows_of(rest, "registrations")
    }
    assert str(campus.students[2]) in {row["id"] for row in rows_of(rest, "users")}


def test_a_large_answer_travels_compressed_as_the_device_accepts(
    campus: Campus, instructor_laptop: Device
) -> None:
    """A device asks for zstd (its HTTP client decodes it) and gets it; a client that takes
    only gzip gets gzip, one that takes neither gets the JSON as it is: the same page."""
    transport = transport_of(instructor_laptop)
    request = {"cursor": 0, "fingerprint": ""}
    own = transport.call("POST", "/pull", request)
    assert own.headers["Content-Encoding"] == "zstd"
    pages = {"zstd": own.json()}
    for accepted in ("gzip", "identity"):
        response = transport.call("POST", "/pull", request, headers={"Accept-Encoding": accepted})
        assert response.headers.get("Content-Encoding", "identity") == accepted
        pages[accepted] = response.json()
    assert rows_of(pages["zstd"], "users")
    assert pages["zstd"]["rows"] == pages["gzip"]["rows"] == pages["identity"]["rows"]


def rows_of(page: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """A pulled page's rows of `table` as objects (protocol 2 sends arrays and their columns)."""
    names = page.get("columns", {}).get(table, [])
    return [dict(zip(names, row, strict=True)) for row in page["rows"].get(table, [])]


def _register_offline(device: Device, student_id: Any, section_id: Any) -> str:
    from portal.registration.services import register

    with acting(device, student_id) as db:
        result = register(
            db, db.get(User, student_id), db.get(Section, section_id), now=datetime.now(UTC)
        )
        db.commit()
        return result.status


def _drop_offline(device: Device, student_id: Any) -> None:
    from portal.registration.services import drop

    with acting(device, student_id) as db:
        mine = db.scalar(select(Registration).filter_by(student_id=student_id))
        drop(db, mine, now=datetime.now(UTC))
        db.commit()


def test_an_offline_registration_into_a_section_filled_meanwhile_is_waitlisted(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    small = new_section(server, capacity=1, waitlist=1)
    rival = new_student(server, "rival1")
    laptop = make_device("stud3")
    assert server_register(server, rival, small) == "enrolled"  # the last seat, meanwhile
    assert _register_offline(laptop, campus.students[2], small) == "enrolled"  # as it looked
    laptop.sync()
    with laptop.session():
        mine = _db.session.scalar(select(Registration).filter_by(student_id=campus.students[2]))
        assert (mine.status, mine.waitlist_position) == ("waitlisted", 1)
    assert_replica_matches(server, laptop)


def test_an_offline_registration_refused_by_the_server_is_undone_on_the_device(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    small = new_section(server, capacity=1, waitlist=0)
    rival = new_student(server, "rival2")
    laptop = make_device("stud3")
    assert server_register(server, rival, small) == "enrolled"
    assert _register_offline(laptop, campus.students[2], small) == "enrolled"
    summary = laptop.sync()
    assert summary.refused == 1
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert conflict.kind == "refused" and conflict.author_id == campus.students[2]
        assert "full" in conflict.detail
    with laptop.session():
        assert _db.session.scalar(select(Registration).filter_by(section_id=small)) is None
        assert _db.session.get(Section, small).enrolled_count == 1
    assert_replica_matches(server, laptop)


def test_offline_registrations_drops_and_promotions_are_audited_as_their_authors(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    from portal.sync.server.apply import MADE_OFFLINE

    waiting, leaving = make_device("stud3"), make_device("stud1")
    assert _register_offline(waiting, campus.students[2], campus.section) == "waitlisted"
    waiting.sync()
    _drop_offline(leaving, campus.students[0])
    leaving.sync()
    with on_server(server):
        entries = _db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.startswith("registration."))
            .order_by(AuditEntry.created_at)
        ).all()
        assert [(e.action, e.actor_id, e.reason) for e in entries] == [
            ("registration.waitlist", campus.students[2], MADE_OFFLINE),
            ("registration.drop", campus.students[0], MADE_OFFLINE),
            ("registration.promote", campus.students[0], MADE_OFFLINE),
        ]


def test_a_refused_registration_leaves_no_seat_taken_on_the_device(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    """Refused for a reason that changed nothing on the server (here the registration window
    closed meanwhile): the seat the device counted locally is given back too."""
    from portal.models import Term

    section_id = new_section(server, capacity=5, waitlist=0)
    laptop = make_device("stud3")
    assert _register_offline(laptop, campus.students[2], section_id) == "enrolled"
    with on_server(server):
        term = _db.session.get(Section, section_id).term
        term.registration_closes_at = datetime.now(UTC) - timedelta(hours=1)
        term.registration_opens_at = datetime.now(UTC) - timedelta(days=9)
        _db.session.commit()
        closed_term = term.id
    laptop.sync()
    with laptop.session():
        assert _db.session.get(Section, section_id).enrolled_count == 0
        assert _db.session.get(Term, closed_term).registration_closes_at < datetime.now(UTC)
    assert_replica_matches(server, laptop)


def test_a_mark_on_grades_finalised_meanwhile_is_refused_with_its_reason_and_kept(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    from portal.grading.services import finalise_section

    with on_server(server):
        _db.session.add(
            Assessment(
                section_id=campus.section, name="Final", kind="exam", weight=50, max_points=100
            )
        )
        _db.session.commit()
    laptop = make_device("teach1")
    local_mark(laptop, campus.instructor, campus.assessment, campus.students[0], "88")
    with acting_on_server(server, campus.instructor) as db:
        finalise_section(
            db,
            db.get(User, campus.instructor),
            db.get(Section, campus.section),
            now=datetime.now(UTC),
        )
        db.commit()
    summary = laptop.sync()
    assert summary.refused == 1
    assert outbox(laptop) == []
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert conflict.kind == "refused"
        assert conflict.detail.startswith("Grades for ") and "are final" in conflict.detail
        assert conflict.lost_value["points"] == 88
        assert conflict.author_id == campus.instructor
    assert points_on(server, campus.assessment, campus.students[0]) is None
    assert points_on(laptop.app, campus.assessment, campus.students[0]) is None
    with laptop.session():  # the author sees their own conflict on the device
        assert _db.session.scalar(select(SyncConflict.detail)) == conflict.detail
    assert_replica_matches(server, laptop)


def test_one_change_that_always_fails_does_not_block_those_behind_it(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    with instructor_laptop.session():
        _db.session.execute(
            OutboxEntry.__table__.insert().values(
                change_id=uuid.uuid4(),
                table_name="marks",
                row_id=uuid.uuid4(),
                op="update",
                fields={"points": "not a number"},
                hlc=hlc.tick("", datetime.now(UTC), "d"),
                base_cursor=0,
                actor_id=campus.instructor,
                created_at=datetime.now(UTC),
            )
        )
        _db.session.commit()
    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[1], "61")
    summary = instructor_laptop.sync()
    assert summary.pushed == 2 and summary.refused == 1
    assert points_on(server, campus.assessment, campus.students[1]) == 61
    assert outbox(instructor_laptop) == []


def test_a_malformed_change_is_refused_to_its_author_and_leaves_the_outbox(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """A change the server cannot read (here: its clock is not a clock) is answered as refused,
    once; its values are kept in a refusal that its author sees on the device's "My sync
    conflicts" page; it leaves the outbox, and the change behind it goes through."""
    from tests.conftest import post_form

    malformed = {
        "change_id": str(uuid.uuid4()),
        "table": "marks",
        "row_id": str(uuid.uuid4()),
        "op": "insert",
        "fields": {
            "assessment_id": str(campus.assessment),
            "student_id": str(campus.students[0]),
            "points": 12,
        },
        "hlc": "not a clock",
        "base_cursor": 0,
        "actor_id": str(campus.instructor),
    }
    with instructor_laptop.session():
        _db.session.execute(
            OutboxEntry.__table__.insert().values(
                change_id=uuid.UUID(malformed["change_id"]),
                table_name=malformed["table"],
                row_id=uuid.UUID(malformed["row_id"]),
                op=malformed["op"],
                fields=malformed["fields"],
                hlc=malformed["hlc"],
                base_cursor=0,
                actor_id=campus.instructor,
                created_at=datetime.now(UTC),
            )
        )
        _db.session.commit()
    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[1], "61")
    summary = instructor_laptop.sync()
    assert (summary.pushed, summary.refused) == (2, 1)
    assert outbox(instructor_laptop) == []
    assert points_on(server, campus.assessment, campus.students[1]) == 61
    assert points_on(server, campus.assessment, campus.students[0]) is None
    detail = "Malformed change: not a hybrid logical clock timestamp: 'not a clock'"
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.detail) == ("refused", detail)
        assert (conflict.author_id, str(conflict.change_id)) == (
            campus.instructor,
            malformed["change_id"],
        )
        assert conflict.lost_value["points"] == 12
    # A replay gets the first answer and records nothing twice.
    assert push_raw(instructor_laptop, [malformed]) == [
        {"change_id": malformed["change_id"], "status": "refused", "detail": detail}
    ]
    assert count(server, SyncConflict) == 1
    instructor_laptop.sync()
    web = instructor_laptop.app.test_client()
    response = post_form(web, "/login", {"username": "teach1", "password": factories.PASSWORD})
    assert response.status_code == 302
    page = web.get("/sync/my-conflicts").get_data(as_text=True)
    assert "Refused by the server&#39;s rules" in page or "Refused by the server's rules" in page
    assert "Malformed change: not a hybrid logical clock timestamp" in page


# --- 6. Conflicts: field by field, by hybrid logical clock; the loser is kept --------------------


class DeviceClock:
    """The device's wall clock `offset` away from the real one: what the device's outbox dates
    its edits with, and what its client measures the server's clock against. (Server and
    devices share this process, so only the device's readings are shifted.)"""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import sys

        shift = self.offset

        class Clock(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
                caller = sys._getframe(1).f_code.co_name
                return datetime.now(tz) + (shift if caller == "_write_outbox" else timedelta())

        class DeviceTime:
            @staticmethod
            def time() -> float:
                return time.time() + shift.total_seconds()

        monkeypatch.setattr(capture, "datetime", Clock)
        monkeypatch.setattr(sync_client, "time", DeviceTime)


# A device measures the server's clock over HTTP, to within half a round trip; two edits of
# the same field are ordered by real time when they are further apart than that.
CLOCK_PRECISION_MS = 2_000  # half a round trip: over a second on a saturated 2-core machine


def _after(moment_ms: int) -> None:
    """Return once the real clock has passed `moment_ms` by more than a clock's precision."""
    while hlc.millis_of(datetime.now(UTC)) <= moment_ms + CLOCK_PRECISION_MS:
        time.sleep(0.01)


def test_different_fields_changed_on_both_sides_merge(
    campus: Campus, student_laptop: Device, server: Flask
) -> None:

    with on_server(server):  # an admin corrects a server-kept field meanwhile
        registration = _db.session.scalar(
            select(Registration).filter_by(student_id=campus.students[0])
        )
        registration.final_grade = "B"
        _db.session.commit()
    _drop_offline(student_laptop, campus.students[0])
    student_laptop.sync()
    with on_server(server):
        merged = _db.session.scalar(select(Registration).filter_by(student_id=campus.students[0]))
        assert (merged.status, merged.final_grade) == ("dropped", "B")
    assert count(server, SyncConflict) == 0
    assert_replica_matches(server, student_laptop)


@pytest.mark.parametrize("days", [3, -3])
def test_the_same_field_is_decided_by_real_time_even_with_a_device_clock_days_off(
    campus: Campus,
    make_device: Callable[..., Device],
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
    days: int,
) -> None:
    """Clock 3 days ahead: its older edit must lose to the server's newer one. Clock 3 days
    behind: its newer edit must win over the server's older one. Either way the value that
    lost is kept in a conflict record."""
    server_mark(server, campus.instructor, campus.assessment, campus.students[0], "50")
    DeviceClock(timedelta(days=days)).install(monkeypatch)
    laptop = make_device("teach1")
    assert abs(state_of(laptop).clock_offset_ms + days * 86_400_000) < 60_000
    if days > 0:
        local_mark(laptop, campus.instructor, campus.assessment, campus.students[0], "60")
        _after(hlc.millis_of(datetime.now(UTC)))
        server_mark(server, campus.admin, campus.assessment, campus.students[0], "70")
        winner, loser, kind = 70, 60, "superseded"
    else:
        server_mark(server, campus.admin, campus.assessment, campus.students[0], "70")
        _after(hlc.millis_of(datetime.now(UTC)))
        local_mark(laptop, campus.instructor, campus.assessment, campus.students[0], "60")
        winner, loser, kind = 60, 70, "overwritten"
    laptop.sync()
    assert points_on(server, campus.assessment, campus.students[0]) == winner
    assert points_on(laptop.app, campus.assessment, campus.students[0]) == winner
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.field) == (kind, "points")
        assert {conflict.kept_value, conflict.lost_value} == {winner, loser}
        assert conflict.lost_value == (60 if kind == "superseded" else 70)
    assert_replica_matches(server, laptop)


@pytest.mark.parametrize("days", [3, -3])
def test_a_wall_clock_set_after_the_last_sync_does_not_reorder_edits(
    campus: Campus,
    instructor_laptop: Device,
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
    days: int,
) -> None:
    """The device synced with a right clock, then its wall clock was set 3 days ahead (or back)
    without a restart. Ahead: its older edit must still lose to the server's newer one (not be
    dated at its arrival). Back: its newer edit must still win. Its edits are dated by the boot
    clock since the sync, which nobody sets; the value that lost is kept either way."""
    if hlc.boot_clock() is None:
        pytest.skip("this system has no boot clock: the wall clock is all a device has")
    server_mark(server, campus.instructor, campus.assessment, campus.students[0], "50")
    instructor_laptop.sync()
    DeviceClock(timedelta(days=days)).install(monkeypatch)  # set after the last sync
    if days > 0:
        local_mark(
            instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "60"
        )
        _after(hlc.millis_of(datetime.now(UTC)))
        server_mark(server, campus.admin, campus.assessment, campus.students[0], "70")
        winner, loser, kind = 70, 60, "superseded"
    else:
        server_mark(server, campus.admin, campus.assessment, campus.students[0], "70")
        _after(hlc.millis_of(datetime.now(UTC)))
        local_mark(
            instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "60"
        )
        winner, loser, kind = 60, 70, "overwritten"
    instructor_laptop.sync()
    assert points_on(server, campus.assessment, campus.students[0]) == winner
    assert points_on(instructor_laptop.app, campus.assessment, campus.students[0]) == winner
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.field) == (kind, "points")
        assert {conflict.kept_value, conflict.lost_value} == {winner, loser}
    assert_replica_matches(server, instructor_laptop)


def test_after_a_restart_with_the_clock_set_back_an_edit_is_dated_no_earlier_than_the_last_sync(
    campus: Campus,
    instructor_laptop: Device,
    lab_laptop: Device,
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart the boot clock starts again and proves nothing: the wall clock (with the
    offset of the last sync) dates the edits, but never before that sync. The lab laptop's edit,
    made before the instructor's laptop last synced and pushed after it, loses to the
    instructor's later edit even though the instructor's laptop restarted with its clock set
    3 days back."""
    local_mark(lab_laptop, campus.lab_staff, campus.lab, campus.students[0], "4")
    _after(hlc.millis_of(datetime.now(UTC)))
    instructor_laptop.sync()
    lab_laptop.sync()  # pushed after the instructor's laptop last pulled: a real conflict
    assert points_on(server, campus.lab, campus.students[0]) == 4
    monkeypatch.setattr(hlc, "boot_clock", lambda: ("a-later-boot", 12_000))  # restarted
    DeviceClock(timedelta(days=-3)).install(monkeypatch)
    local_mark(instructor_laptop, campus.instructor, campus.lab, campus.students[0], "9")
    stamp = hlc.Timestamp.parse(outbox(instructor_laptop)[-1].hlc)
    assert stamp.millis > hlc.millis_of(datetime.now(UTC)) - 3_600_000  # not 3 days back
    instructor_laptop.sync()
    assert points_on(server, campus.lab, campus.students[0]) == 9
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.kept_value, conflict.lost_value) == ("overwritten", 9, 4)
    assert_replica_matches(server, instructor_laptop)


def test_a_devices_own_later_edit_of_a_field_is_not_beaten_by_its_earlier_one(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """Two offline edits of one mark pushed in one batch: the second is the value. (The field's
    clock is the edit's, not the moment the server applied it.)"""
    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "50")
    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "60")
    summary = instructor_laptop.sync()
    assert (summary.pushed, summary.conflicts) == (2, 0)
    assert points_on(server, campus.assessment, campus.students[0]) == 60
    assert count(server, SyncConflict) == 0
    assert_replica_matches(server, instructor_laptop)


def test_an_edit_against_a_delete_is_flagged(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    local_mark(instructor_laptop, campus.instructor, campus.lab, campus.students[1], "8")
    server_delete_assessment(server, campus.instructor, campus.lab)
    instructor_laptop.sync()
    with on_server(server):
        conflict = _db.session.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.field) == ("deleted", "points")
        # A mark made offline: the change's fields are kept (whose mark, which assessment).
        assert conflict.lost_value["points"] == 8
        assert conflict.lost_value["student_id"] == str(campus.students[1])
        assert conflict.author_id == campus.instructor
    assert points_on(server, campus.lab, campus.students[1]) is None
    assert_replica_matches(server, instructor_laptop)


# --- 7. A device holds its scope, table by table, for every role --------------------------------


def _submit(app: Flask, student_id: Any, assessment_id: Any, content: bytes, name: str) -> Any:
    import io

    from portal.submissions import services as submissions
    from portal.submissions import storage

    upload_dir = Path(app.config["PORTAL"]["UPLOAD_DIR"])
    with app.app_context():
        db = _db.session
        capture.attribute_to(db, student_id)
        incoming = storage.receive(io.BytesIO(content), upload_dir, 10 * 1024 * 1024)
        made = submissions.submit(
            db,
            db.get(User, student_id),
            db.get(Assessment, assessment_id),
            incoming,
            name,
            upload_dir=upload_dir,
            now=datetime.now(UTC),
        )
        db.commit()
        return made.id


@pytest.fixture
def busy_campus(campus: Campus, server: Flask) -> Campus:
    """The campus with a second section (another instructor), marks, attendance and lab
    reports for several students in both."""
    from portal.attendance.services import LabSessionInput, create_lab_session, record_attendance

    with on_server(server):
        db = _db.session
        other = factories.make_user(db, "instructor", username="teach2")
        section = db.get(Section, campus.other_section)
        section.instructor_id = other_id = other.id
        db.add(
            Registration(student_id=campus.students[2], section_id=section.id, status="enrolled")
        )
        section.enrolled_count = 1
        db.add(Assessment(section_id=section.id, name="Lab A", kind="lab", weight=20, max_points=5))
        db.commit()
        other_lab = db.scalar(select(Assessment.id).filter_by(section_id=section.id))
        sessions = {}
        for section_id, actor in ((campus.section, campus.lab_staff), (section.id, other_id)):
            sessions[section_id] = create_lab_session(
                db,
                db.get(User, actor),
                db.get(Section, section_id),
                LabSessionInput(
                    held_on=datetime.now(UTC).date(),
                    starts_at=datetime(2000, 1, 1, 9).time(),
                    ends_at=datetime(2000, 1, 1, 10).time(),
                    room="L1",
                ),
            ).id
        db.commit()
        for student in campus.students[:2]:
            record_attendance(
                db,
                db.get(User, campus.lab_staff),
                db.get(LabSession, sessions[campus.section]),
                student,
                "present",
            )
        record_attendance(
            db,
            db.get(User, other_id),
            db.get(LabSession, sessions[section.id]),
            campus.students[2],
            "late",
        )
        db.commit()
    for student, points in zip(campus.students[:2], ("81", "67"), strict=True):
        server_mark(server, campus.instructor, campus.assessment, student, points)
        server_mark(server, campus.instructor, campus.lab, student, "9")
    server_mark(server, other_id, other_lab, campus.students[2], "4")
    _submit(server, campus.students[0], campus.lab, b"report of student one\n", "one.txt")
    _submit(server, campus.students[1], campus.lab, b"report of student two\n", "two.txt")
    _submit(server, campus.students[2], other_lab, b"report of student three\n", "three.txt")
    return campus


def _ids(app: Flask, model: Any, column: str) -> set[Any]:
    with app.app_context():
        return set(_db.session.scalars(select(getattr(model, column))))


@ON_BOTH
@pytest.mark.parametrize("username", ["stud1", "teach1", "lab1", "admin1"])
def test_every_role_holds_exactly_its_scope_table_by_table(
    busy_campus: Campus, make_device: Callable[..., Device], server: Flask, username: str
) -> None:
    campus = busy_campus
    laptop = make_device(username)
    assert_replica_matches(server, laptop)
    # The same, said without the scope rules, for what must never leak:
    if username == "stud1":
        me = campus.students[0]
        assert _ids(laptop.app, Mark, "student_id") == {me}
        assert _ids(laptop.app, AttendanceRecord, "student_id") == {me}
        assert _ids(laptop.app, Submission, "student_id") == {me}
        assert _ids(laptop.app, Registration, "student_id") == {me}
        with laptop.session():
            users = {u.id: u for u in _db.session.scalars(select(User))}
            assert {u.id for u in users.values() if u.role == "student"} == {me}
            assert {u.id for u in users.values() if u.password_hash != "!"} == {me}
            assert _db.session.scalars(select(StoredFile.sha256)).all() == [
                _db.session.scalar(select(Submission.file_sha256))
            ]
    elif username == "lab1":
        with laptop.session():
            kinds = set(_db.session.scalars(select(Assessment.kind)))
            assert kinds == {"lab"}
            assert _db.session.scalar(select(func.count(Mark.id))) == 2
    elif username == "admin1":
        for entry in SYNCED_TABLES:
            assert count(laptop.app, entry.model) == count(server, entry.model), entry.name
    with laptop.session():
        hashes = _db.session.scalars(select(User.password_hash).where(User.password_hash != "!"))
        assert len(list(hashes)) == 1


@ON_BOTH
def test_a_device_of_two_staff_accounts_holds_the_union_of_their_scopes(
    busy_campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    lab_laptop = make_device("lab1")
    sync_client.join_account(
        lab_laptop.engine, "teach2", factories.PASSWORD, client=lab_laptop.http
    )
    lab_laptop.sync()
    assert len(device_accounts(server, lab_laptop)) == 2
    assert_replica_matches(server, lab_laptop)
    with lab_laptop.session():
        assert _db.session.get(Section, busy_campus.other_section) is not None
        assert {s.section_id for s in _db.session.scalars(select(LabSession))} == {
            busy_campus.section,
            busy_campus.other_section,
        }


@ON_BOTH
def test_rows_that_leave_the_scope_are_removed_from_the_device(
    busy_campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    from portal.registration.services import drop

    campus = busy_campus
    student = make_device("stud3")
    teacher = make_device("teach2")
    assert count(student.app, LabSession) == 1
    assert count(teacher.app, Mark) == 1
    with on_server(server):
        db = _db.session
        registration = db.scalar(select(Registration).filter_by(student_id=campus.students[2]))
        capture.attribute_to(db, campus.students[2])
        drop(db, registration, now=datetime.now(UTC))
        section = db.get(Section, campus.other_section)
        section.instructor_id = campus.instructor  # reassigned to another instructor
        db.commit()
    student.sync()
    teacher.sync()
    assert count(student.app, LabSession) == 0  # the dropped section's sessions
    assert count(student.app, Assessment) == 0
    assert count(teacher.app, Mark) == 0  # the section's marks left with it
    assert count(teacher.app, Registration) == 0
    assert count(teacher.app, User, User.role == "student") == 0
    assert_replica_matches(server, student)
    assert_replica_matches(server, teacher)


def test_an_account_that_stops_being_staff_leaves_the_students_devices(
    campus: Campus, student_laptop: Device, server: Flask
) -> None:
    with student_laptop.session():
        assert _db.session.scalar(select(User).filter_by(username="lab1")) is not None
    with on_server(server):
        _db.session.get(Section, campus.section).lab_staff_id = None
        _db.session.commit()
    student_laptop.sync()
    with student_laptop.session():
        assert _db.session.scalar(select(User).filter_by(username="lab1")) is None
    assert_replica_matches(server, student_laptop)


@ON_BOTH
def test_an_assessment_that_stops_being_a_lab_leaves_the_lab_staffs_device_with_its_marks(
    busy_campus: Campus,
    make_device: Callable[..., Device],
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lab staff read the lab assessments of their sections only: an instructor making Lab 1
    an assignment takes it, its marks and its lab reports off the lab staff's device (no row
    of theirs changed, so only a snapshot can tell); making it a lab again brings them back."""
    from portal.grading.services import AssessmentInput, update_assessment

    campus = busy_campus
    laptop = make_device("lab1")
    assert _ids(laptop.app, Mark, "assessment_id") == {campus.lab}
    assert count(laptop.app, Submission) == 2
    snapshots: list[bool] = []
    real_json = sync_client.Transport.json

    def spy(self: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
        answer = real_json(self, method, path, body)
        if path == "/pull":
            snapshots.append(bool(answer.get("snapshot")))
        return answer

    monkeypatch.setattr(sync_client.Transport, "json", spy)

    def make_lab(kind: str) -> None:
        with acting_on_server(server, campus.instructor) as db:
            lab = db.get(Assessment, campus.lab)
            data = AssessmentInput(lab.name, kind, lab.weight, lab.max_points, lab.due_at)
            update_assessment(db, db.get(User, campus.instructor), lab, data)
            db.commit()

    make_lab("assignment")
    laptop.sync()
    assert snapshots and all(snapshots)
    assert count(laptop.app, Assessment, Assessment.id == campus.lab) == 0
    assert count(laptop.app, Mark) == 0
    assert count(laptop.app, Submission) == 0 and count(laptop.app, StoredFile) == 0
    assert_replica_matches(server, laptop)

    snapshots.clear()
    make_lab("lab")
    laptop.sync()
    assert snapshots and all(snapshots)
    assert _ids(laptop.app, Mark, "assessment_id") == {campus.lab}
    assert count(laptop.app, Submission) == 2
    assert_replica_matches(server, laptop)


def test_a_snapshot_abandoned_half_way_and_resumed_after_changes_keeps_only_the_scope(
    campus: Campus,
    flaky_device: Callable[[str], tuple[Device, Flaky]],
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A snapshot is cut after its first page; meanwhile the section's lab staff changes (the
    section row changes after the snapshot's bound, and lab1 stops being staff anywhere)."""
    laptop, transport = flaky_device("stud1")
    with on_server(server):
        lab2 = factories.make_user(_db.session, "lab_staff", username="lab2").id
        _db.session.get(Section, campus.other_section).lab_staff_id = lab2
        _db.session.commit()
    monkeypatch.setitem(server.config["PORTAL"], "SYNC_SNAPSHOT_PAGE_ROWS", 4)
    transport.lose_after["/sync/v1/pull"] = 1
    transport.lose["/sync/v1/pull"] = 1
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    assert state_of(laptop).pull_snapshot is True
    with on_server(server):
        _db.session.get(Section, campus.section).lab_staff_id = lab2
        _db.session.commit()
    laptop.sync()
    laptop.sync()
    assert_replica_matches(server, laptop)
    with laptop.session():
        assert _db.session.scalar(select(User).filter_by(username="lab1")) is None


def test_a_first_snapshot_on_an_empty_device_keeps_no_clean_up_records_and_a_later_one_prunes(
    campus: Campus, server: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first snapshot of an empty device is written without the seen-row records (nothing
    can lie outside it), across a cut and a resume; a later snapshot on the device, which now
    holds rows, notes them again and removes what left the scope."""
    server_mark(server, campus.instructor, campus.assessment, campus.students[0], "55")
    monkeypatch.setitem(server.config["PORTAL"], "SYNC_SNAPSHOT_PAGE_ROWS", 4)
    transport = Flaky(server)
    http = httpx.Client(transport=transport, base_url=SERVER_URL)
    app = make_app(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh.db'}")
    laptop = Device(app, http, Path(app.config["PORTAL"]["UPLOAD_DIR"]))
    code = enrolment_code(server, "teach1")
    sync_client.enrol(laptop.engine, SERVER_URL, code, device_name="fresh", client=http)
    transport.lose_after["/sync/v1/pull"] = 2
    transport.lose["/sync/v1/pull"] = 1
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    state = state_of(laptop)
    assert state.pull_snapshot is True and state.pull_fresh is True
    assert count(laptop.app, User) > 0
    assert count(laptop.app, SnapshotSeen) == 0
    laptop.sync()  # resumes the same snapshot, still written the quick way
    state = state_of(laptop)
    assert state.pull_upto is None and state.pull_fresh is False
    assert count(laptop.app, SnapshotSeen) == 0
    assert count(laptop.app, Mark) == 1
    assert_replica_matches(server, laptop)
    with on_server(server):  # the section goes to another instructor: a new snapshot
        other = factories.make_user(_db.session, "instructor", username="teach9").id
        _db.session.get(Section, campus.section).instructor_id = other
        _db.session.commit()
    transport.lose_after["/sync/v1/pull"] = 1
    transport.lose["/sync/v1/pull"] = 1
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    state = state_of(laptop)
    assert state.pull_snapshot is True and state.pull_fresh is False
    assert count(laptop.app, SnapshotSeen) > 0
    laptop.sync()
    assert count(laptop.app, SnapshotSeen) == 0
    assert count(laptop.app, Mark) == 0  # the section's marks left with it
    assert count(laptop.app, Registration) == 0
    assert_replica_matches(server, laptop)
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_a_snapshot_on_a_device_that_holds_rows_replaces_a_row_it_holds_under_another_id(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    """A device that is not empty takes the careful way in a snapshot too: its own mark for a
    student and assessment gives way to the server's, made meanwhile under another id."""
    laptop = make_device("teach1")
    local_mark(laptop, campus.instructor, campus.assessment, campus.students[1], "40")
    server_mark(server, campus.instructor, campus.assessment, campus.students[1], "60")
    with on_server(server):  # and the scope changes shape: the next pull is a snapshot
        lab2 = factories.make_user(_db.session, "lab_staff", username="lab2").id
        _db.session.get(Section, campus.other_section).lab_staff_id = lab2
        _db.session.commit()
        server_id = _db.session.scalar(
            select(Mark.id).filter_by(
                assessment_id=campus.assessment, student_id=campus.students[1]
            )
        )
    laptop.sync()
    with laptop.session():
        held = _db.session.scalars(
            select(Mark.id).filter_by(
                assessment_id=campus.assessment, student_id=campus.students[1]
            )
        ).all()
    assert held == [server_id]
    assert points_on(laptop.app, campus.assessment, campus.students[1]) == points_on(
        server, campus.assessment, campus.students[1]
    )
    assert count(laptop.app, SnapshotSeen) == 0
    assert_replica_matches(server, laptop)


# --- 8. Files: content-addressed, resumable, a row only after its whole file --------------------


def test_an_offline_lab_report_reaches_the_server_by_its_hash(
    campus: Campus, student_laptop: Device, server: Flask
) -> None:
    import hashlib

    from portal.submissions import storage

    content = b"Measured g = 9.79 m/s^2\n" * 50
    made = _submit(student_laptop.app, campus.students[0], campus.lab, content, "report.txt")
    student_laptop.sync()
    sha = hashlib.sha256(content).hexdigest()
    with on_server(server):
        submission = _db.session.get(Submission, made)
        assert submission is not None and submission.file_sha256 == sha
    blob = storage.blob_path(Path(server.config["PORTAL"]["UPLOAD_DIR"]), sha)
    assert blob.read_bytes() == content
    assert_replica_matches(server, student_laptop)


def test_a_file_upload_resumes_where_it_stopped(
    campus: Campus,
    flaky_device: Callable[[str], tuple[Device, Flaky]],
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    laptop, transport = flaky_device("stud1")
    monkeypatch.setattr(device_outbox, "CHUNK_BYTES", 1000)
    content = b"0123456789abcdef\n" * 210  # 3,570 bytes: four chunks
    _submit(laptop.app, campus.students[0], campus.lab, content, "data.txt")
    with laptop.session():
        sha = _db.session.scalar(select(StoredFile.sha256))
    put_path = f"/sync/v1/files/{sha}"
    transport.lose_after[put_path] = 1  # the second chunk is stored, its reply lost
    transport.lose[put_path] = 1
    with pytest.raises(sync_client.SyncError):
        laptop.sync()
    assert count(server, Submission) == 0
    part = server_files.partial_path(
        Path(server.config["PORTAL"]["UPLOAD_DIR"]), state_of(laptop).device_id, sha
    )
    assert part.stat().st_size == 2000
    transport.sent.clear()
    laptop.sync()
    assert transport.bytes_sent("PUT", put_path) == len(content) - 2000
    assert count(server, Submission) == 1
    assert_replica_matches(server, laptop)


def test_a_submission_is_not_applied_before_its_file_is_whole_and_checked(
    campus: Campus, student_laptop: Device, server: Flask
) -> None:
    import hashlib

    content = b"a lab report in two halves\n" * 100
    sha = hashlib.sha256(content).hexdigest()
    transport = transport_of(student_laptop)

    def put(offset: int, data: bytes, last: bool) -> dict[str, Any]:
        headers = {**transport.headers(), "Content-Type": "application/octet-stream"}
        if last:
            headers["X-File-Complete"] = "1"
        return transport.call(
            "PUT", f"/files/{sha}?offset={offset}", None, content=data, headers=headers
        ).json()

    put(0, content[:1000], last=False)
    submission = change(
        "submissions",
        uuid.uuid4(),
        {
            "assessment_id": campus.lab,
            "student_id": campus.students[0],
            "file_sha256": sha,
            "original_name": "report.txt",
            "size": len(content),
            "content_type": "text/plain",
        },
        actor=campus.students[0],
    )
    [answer] = push_raw(student_laptop, [submission])
    assert answer["status"] == "waiting"
    assert count(server, Submission) == 0
    # A file whose bytes do not match its name is refused and must be sent again whole.
    with pytest.raises(sync_client.SyncError) as mismatch:
        put(1000, b"x" * (len(content) - 1000), last=True)
    assert str(mismatch.value) == "The file received does not match its sha256; send it again."
    [answer] = push_raw(student_laptop, [submission])
    assert answer["status"] == "waiting"
    assert put(0, content, last=True)["complete"] is True
    [answer] = push_raw(student_laptop, [submission])  # the same change, now that the file is whole
    assert answer["status"] == "applied"
    assert count(server, Submission) == 1


def test_identical_files_travel_once(
    campus: Campus, flaky_device: Callable[[str], tuple[Device, Flaky]], server: Flask
) -> None:
    one, first = flaky_device("stud1")
    two, second = flaky_device("stud2")
    content = b"the template handed out, submitted unchanged\n" * 300
    _submit(one.app, campus.students[0], campus.lab, content, "template.txt")
    _submit(two.app, campus.students[1], campus.lab, content, "template.txt")
    one.sync()
    two.sync()
    assert first.bytes_sent("PUT", "/sync/v1/files/") == len(content)
    assert second.bytes_sent("PUT", "/sync/v1/files/") == 0
    assert count(server, Submission) == 2 and count(server, StoredFile) == 1
    assert_replica_matches(server, one)
    assert_replica_matches(server, two)


def test_a_file_download_writes_nothing_on_the_server(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """A first sync fetches many files at once: each download only reads (the pull that named
    the file recorded the device's contact), and a file out of scope is still refused."""
    import hashlib

    content = b"a lab report\n" * 50
    _submit(server, campus.students[0], campus.lab, content, "report.txt")
    sha = hashlib.sha256(content).hexdigest()
    transport = transport_of(instructor_laptop)
    written: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            written.append(statement)

    with on_server(server):
        engine = _db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        assert transport.call("GET", f"/files/{sha}").content == content
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert written == []


@ON_BOTH
def test_files_fetched_alongside_a_page_are_checked_before_any_of_it_is_written(
    campus: Campus, instructor_laptop: Device, server: Flask
) -> None:
    """A page's files are fetched while its other rows are written: a file that fails its
    hash fails the whole page (the mark before it too, the cursor stays), and no row names
    a file the device does not hold whole."""
    import hashlib

    from portal.submissions import storage

    laptop = instructor_laptop
    contents = [b"report one\n" * 40, b"report two\n" * 40]
    for student, content in zip(campus.students[:2], contents, strict=True):
        _submit(server, student, campus.lab, content, "report.txt")
    server_mark(server, campus.instructor, campus.assessment, campus.students[1], "7")
    shas = [hashlib.sha256(content).hexdigest() for content in contents]
    served = storage.blob_path(Path(server.config["PORTAL"]["UPLOAD_DIR"]), shas[1])
    served.write_bytes(b"not the report the server was sent\n")
    cursor = state_of(laptop).cursor
    with pytest.raises(sync_client.SyncError, match="did not match its hash"):
        laptop.sync()
    assert count(laptop.app, Submission) == 0
    assert count(laptop.app, StoredFile) == 0
    assert points_on(laptop.app, campus.assessment, campus.students[1]) is None
    assert state_of(laptop).cursor == cursor
    assert not storage.blob_path(laptop.upload_dir, shas[1]).exists()
    served.write_bytes(contents[1])
    summary = laptop.sync()
    assert summary.files == 2 and count(laptop.app, Submission) == 2
    for sha, content in zip(shas, contents, strict=True):
        assert storage.blob_path(laptop.upload_dir, sha).read_bytes() == content
    assert points_on(laptop.app, campus.assessment, campus.students[1]) == 7
    assert_replica_matches(server, laptop)


# --- 9. The protocol is versioned -----------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "words"),
    [(0, "too old for the campus server"), (3, "newer than the campus server's")],
)
def test_a_protocol_the_server_does_not_speak_is_refused_clearly_and_data_kept(
    campus: Campus,
    instructor_laptop: Device,
    server: Flask,
    monkeypatch: pytest.MonkeyPatch,
    version: int,
    words: str,
) -> None:
    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "73")
    before = state_of(instructor_laptop).cursor
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", version)
    with pytest.raises(sync_client.SyncError) as refused:
        instructor_laptop.sync()
    assert refused.value.reason == "protocol"
    assert words in str(refused.value)
    assert str(refused.value).endswith(
        " 1 change waiting on this computer is kept and will be sent once this computer can "
        "sync again."
    )
    assert len(outbox(instructor_laptop)) == 1
    assert state_of(instructor_laptop).cursor == before
    assert state_of(instructor_laptop).last_error == str(refused.value)
    assert points_on(server, campus.assessment, campus.students[0]) is None
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", 1)
    instructor_laptop.sync()
    assert points_on(server, campus.assessment, campus.students[0]) == 73


@pytest.mark.parametrize("version", [0, 3])
def test_a_refused_protocol_says_nothing_of_kept_changes_when_none_wait(
    campus: Campus,
    instructor_laptop: Device,
    monkeypatch: pytest.MonkeyPatch,
    version: int,
) -> None:
    instructor_laptop.sync()
    assert outbox(instructor_laptop) == []
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", version)
    with pytest.raises(sync_client.SyncError) as refused:
        instructor_laptop.sync()
    assert refused.value.reason == "protocol"
    assert "protocol" in str(refused.value) and "kept" not in str(refused.value)
    assert state_of(instructor_laptop).last_error == str(refused.value)


@pytest.mark.parametrize(
    "old_detail",
    [
        "This copy of Campus Portal is too old for the campus server (protocol 0; the server "
        "speaks 1, 2). Install the current version; your changes are kept on this computer and "
        "sync after the update.",
        "This copy of Campus Portal speaks sync protocol 3, newer than the campus server's (2). "
        "Ask IT to update the server; your changes are kept on this computer meanwhile.",
    ],
)
def test_an_older_servers_word_on_kept_changes_is_left_to_the_device(old_detail: str) -> None:
    """Servers before this version said the changes were kept whether any waited or not."""
    answer = httpx.Response(426, json={"detail": old_detail, "status": 426})
    error = sync_client.Transport._problem(answer)
    assert error.reason == "protocol"
    assert str(error) == old_detail.split("; your changes")[0] + "."
    assert "kept" not in str(error)


def test_a_request_without_a_protocol_is_refused(
    campus: Campus, student_laptop: Device, server: Flask
) -> None:
    response = student_laptop.http.post(
        "/sync/v1/pull",
        content=json.dumps({"cursor": 0}),
        headers={"Authorization": f"Bearer {state_of(student_laptop).credential}"},
    )
    assert response.status_code == 426
    assert response.json()["detail"] == "The request does not say which sync protocol it speaks."


# --- 10. A revoked device is refused; its unsent changes are kept --------------------------------


def test_a_revoked_device_is_refused_and_keeps_its_changes_for_export(
    campus: Campus, instructor_laptop: Device, server: Flask, tmp_path: Path
) -> None:
    from portal.models import Device as DeviceRow

    local_mark(instructor_laptop, campus.instructor, campus.assessment, campus.students[0], "58")
    local_mark(instructor_laptop, campus.instructor, campus.lab, campus.students[1], "6")
    with on_server(server):
        db = _db.session
        enrolment.revoke_device(
            db,
            db.get(DeviceRow, state_of(instructor_laptop).device_id),
            actor=db.get(User, campus.admin),
            now=datetime.now(UTC),
        )
        db.commit()
    with pytest.raises(sync_client.SyncError) as refused:
        instructor_laptop.sync()
    assert refused.value.reason == "revoked"
    assert "revoked by an administrator" in str(refused.value)
    assert state_of(instructor_laptop).revoked is True
    kept = outbox(instructor_laptop)
    assert len(kept) == 2
    assert count(server, Mark) == 0
    exported = device_outbox.export_outbox(instructor_laptop.engine, tmp_path / "unsent.json")
    assert exported == 2
    document = json.loads((tmp_path / "unsent.json").read_text())
    assert [c["change_id"] for c in document["changes"]] == [str(e.change_id) for e in kept]
    assert {c["fields"]["points"] for c in document["changes"]} == {58, 6}
    assert len(outbox(instructor_laptop)) == 2  # exporting keeps them too


def _revoke(server: Flask, device: Device, admin_id: Any) -> None:
    from portal.models import Device as DeviceRow

    with on_server(server):
        db = _db.session
        enrolment.revoke_device(
            db,
            db.get(DeviceRow, state_of(device).device_id),
            actor=db.get(User, admin_id),
            now=datetime.now(UTC),
        )
        db.commit()


def test_a_revoked_device_enrolled_again_sends_what_waits_as_its_authors(
    campus: Campus, flaky_device: Callable[[str], tuple[Device, Flaky]], server: Flask
) -> None:
    """A revoked copy enrolled again with a new code is the same device under a new credential:
    its waiting changes are pushed, each re-checked as its author (a mark changed later on the
    server meanwhile keeps the later value, the device's is kept as a conflict), and a first
    answer lost on the way back does not lock it out (the same code again gets the same
    credential)."""
    from portal.models import AuditEntry
    from portal.models import Device as DeviceRow

    laptop, transport = flaky_device("teach1")
    before = state_of(laptop)
    local_mark(laptop, campus.instructor, campus.assessment, campus.students[0], "58")
    local_mark(laptop, campus.instructor, campus.lab, campus.students[1], "6")
    _revoke(server, laptop, campus.admin)
    with pytest.raises(sync_client.SyncError) as refused:
        laptop.sync()
    assert refused.value.reason == "revoked"
    assert "enrolled again" in str(refused.value)
    _after(hlc.millis_of(datetime.now(UTC)))
    server_mark(server, campus.admin, campus.assessment, campus.students[0], "70")

    def enrol(code: str) -> str:
        return sync_client.enrol(
            laptop.engine, SERVER_URL, code, device_name="x", client=laptop.http
        )

    with pytest.raises(sync_client.SyncError) as wrong:  # not an account of this device
        enrol(enrolment_code(server, "stud1"))
    assert (wrong.value.reason, str(wrong.value)) == (
        "refused",
        "That code is for stud1, who has not used this computer: ask for a code for one of "
        "the accounts of this computer.",
    )
    code = enrolment_code(server, "teach1")
    transport.lose["/sync/v1/enrol"] = 1
    with pytest.raises(sync_client.SyncError) as lost:
        enrol(code)
    assert lost.value.reason == "unreachable"
    assert state_of(laptop).credential == before.credential  # nothing changed on the device
    assert enrol(code) == "teach1"  # the same code again: the answer the first one lost
    after = state_of(laptop)
    assert (after.device_id, after.revoked) == (before.device_id, False)
    assert after.credential != before.credential
    summary = laptop.sync()
    assert (summary.pushed, summary.conflicts, summary.refused) == (2, 1, 0)
    assert outbox(laptop) == []
    assert points_on(server, campus.lab, campus.students[1]) == 6
    assert points_on(server, campus.assessment, campus.students[0]) == 70
    with on_server(server):
        db = _db.session
        conflict = db.scalar(select(SyncConflict))
        assert (conflict.kind, conflict.kept_value, conflict.lost_value, conflict.author_id) == (
            "superseded",
            70,
            58,
            campus.instructor,
        )
        assert db.scalar(select(func.count(DeviceRow.id))) == 1
        assert db.scalar(
            select(AuditEntry.summary).filter_by(action="sync.device_enrolled_again")
        ).startswith("Enrolled device dev0 again for teach1 (revoked ")
    assert_replica_matches(server, laptop)
    with pytest.raises(sync_client.SyncError) as connected:  # not revoked: nothing to do
        enrol(enrolment_code(server, "teach1"))
    assert "still connected" in str(connected.value)
    old = sync_client.Transport(SERVER_URL, before.credential, laptop.http)
    with pytest.raises(sync_client.SyncError) as old_refused:  # the old credential is dead
        old.json("POST", "/pull", {"cursor": 0})
    assert "not enrolled" in str(old_refused.value)


# --- 11. Convergence (the random version is tests/sync/test_convergence.py) ---------------------


@pytest.mark.parametrize("order", ["instructor first", "lab staff first"])
def test_offline_edits_on_two_devices_converge_in_either_sync_order(
    campus: Campus, instructor_laptop: Device, lab_laptop: Device, server: Flask, order: str
) -> None:
    from portal.attendance.services import LabSessionInput, create_lab_session, record_attendance

    office, lab = instructor_laptop, lab_laptop
    local_mark(office, campus.instructor, campus.assessment, campus.students[0], "90")
    local_mark(office, campus.instructor, campus.lab, campus.students[1], "3")
    _after(hlc.millis_of(datetime.now(UTC)))
    local_mark(lab, campus.lab_staff, campus.lab, campus.students[1], "4")  # same mark, later
    local_mark(lab, campus.lab_staff, campus.lab, campus.students[0], "10")
    with acting(lab, campus.lab_staff) as db:
        made = create_lab_session(
            db,
            db.get(User, campus.lab_staff),
            db.get(Section, campus.section),
            LabSessionInput(
                held_on=datetime.now(UTC).date(),
                starts_at=datetime(2000, 1, 1, 14).time(),
                ends_at=datetime(2000, 1, 1, 16).time(),
                room="",
            ),
        )
        record_attendance(db, db.get(User, campus.lab_staff), made, campus.students[0], "present")
        db.commit()
    devices = [office, lab] if order == "instructor first" else [lab, office]
    for device in devices + devices:
        device.sync()
    for device in devices:
        assert_replica_matches(server, device)
        assert outbox(device) == []
    # The lab staff's edit of the same mark came later, so it wins whatever the order.
    assert points_on(server, campus.lab, campus.students[1]) == 4
    assert points_on(office.app, campus.lab, campus.students[1]) == 4
    assert points_on(server, campus.assessment, campus.students[0]) == 90
    assert count(server, AttendanceRecord) == 1
    with on_server(server):
        assert _db.session.scalar(select(SyncConflict.lost_value)) == 3


def test_a_change_of_a_server_only_table_is_refused_in_a_grammatical_sentence(
    campus: Campus, newcomer_laptop: Device
) -> None:
    me = campus.students[2]
    [answer] = push_raw(
        newcomer_laptop,
        [
            change(
                "grade_scales",
                uuid.uuid4(),
                {"name": "Pass/fail", "thresholds": [["P", 50.0]], "is_default": False},
                actor=me,
            )
        ],
    )
    assert answer["status"] == "refused"
    assert answer["detail"] == "Grade scales are changed on the campus server only."
