"""Convergence under random work (DESIGN.md, sync invariant 11), by hypothesis stateful testing.

Four enrolled devices (two students, an instructor, lab staff) and the server take random
steps: registrations and drops, marks, attendance, lab sessions, lab reports (identical files
now and then), edits on the server, scope changes, syncs in any order, replies lost after the
server handled the request, pulls abandoned half-way (a killed client). After a final sync of
every device, with nobody writing:

- every replica holds exactly the server's rows for its scope, field for field;
- every change a device ever wrote got an answer from the server (none lost on the way), and
  every change that lost or was refused is kept in a conflict record;
- nothing is duplicated: seat counters equal the registrations they count.

`make test` runs a few hundred examples; PORTAL_SYNC_EXAMPLES=5000 runs more (README).
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from sqlalchemy import func, select

from portal.errors import PortalError
from portal.extensions import db as _db
from portal.models import (
    Assessment,
    LabSession,
    Mark,
    OutboxEntry,
    ProcessedChange,
    Registration,
    Section,
    SyncConflict,
    SyncState,
    User,
)
from portal.sync import capture
from portal.sync.device import client as sync_client
from portal.sync.server import pull as server_pull
from tests import factories
from tests.conftest import make_app
from tests.sync.conftest import SERVER_URL, Device, assert_replica_matches, enrolment_code

EXAMPLES = int(os.environ.get("PORTAL_SYNC_EXAMPLES", "200"))
STEPS = int(os.environ.get("PORTAL_SYNC_STEPS", "12"))
DEVICE_USERS = ("stud1", "stud2", "teach1", "lab1")
REPORTS = (b"same template\n", b"my own measurements\n", b"another report\n")


class Wire(httpx.BaseTransport):
    """The server app over WSGI; a reply can be lost after the server handled the request."""

    def __init__(self, app: Flask) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.lose_path = ""
        self.let_through = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.lose_path and request.url.path == self.lose_path:
            if self.let_through > 0:
                self.let_through -= 1
            else:
                self.lose_path = ""
                response.read()
                response.close()  # the server app finishes the request (its session ends)
                raise httpx.ReadError("connection lost", request=request)
        return response


@dataclass
class World:
    """The server and the devices, and a snapshot of their files to start each example from."""

    root: Path
    server: Flask
    devices: dict[str, Device]
    wires: dict[str, Wire]
    ids: dict[str, Any]

    def apps(self) -> Iterator[Flask]:
        yield self.server
        for device in self.devices.values():
            yield device.app

    def files(self, app: Flask) -> tuple[Path, Path]:
        database = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
        return database, Path(app.config["PORTAL"]["UPLOAD_DIR"])

    def _close(self) -> None:
        for app in self.apps():
            with app.app_context():
                _db.session.remove()
                _db.engine.dispose()

    def save(self) -> None:
        self._close()
        for index, app in enumerate(self.apps()):
            database, uploads = self.files(app)
            uploads.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(database, self.root / f"template{index}.db")
            shutil.copytree(uploads, self.root / f"template{index}-files", dirs_exist_ok=True)

    def restore(self) -> None:
        self._close()
        for index, app in enumerate(self.apps()):
            database, uploads = self.files(app)
            for suffix in ("-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self.root / f"template{index}.db", database)
            shutil.rmtree(uploads, ignore_errors=True)
            shutil.copytree(self.root / f"template{index}-files", uploads)
        for wire in self.wires.values():
            wire.lose_path = ""


def build_world(root: Path) -> World:
    server = make_app(root / "server", f"sqlite:///{root / 'server.db'}", MODE="server")
    ids: dict[str, Any] = {}
    with server.app_context():
        db = _db.session
        users = {
            "admin1": factories.make_user(db, "admin", username="admin1"),
            "teach1": factories.make_user(db, "instructor", username="teach1"),
            "lab1": factories.make_user(db, "lab_staff", username="lab1"),
            "lab2": factories.make_user(db, "lab_staff", username="lab2"),
        }
        for name in ("stud1", "stud2", "stud3", "stud4"):
            users[name] = factories.make_user(db, "student", username=name)
        term = factories.make_term(db)
        one = factories.make_section(
            db,
            term=term,
            capacity=2,
            waitlist_capacity=1,
            instructor_id=users["teach1"].id,
            lab_staff_id=users["lab1"].id,
        )
        two = factories.make_section(
            db, term=term, capacity=3, waitlist_capacity=1, instructor_id=users["teach1"].id
        )
        db.add(Registration(student_id=users["stud3"].id, section_id=one.id, status="enrolled"))
        one.enrolled_count = 1
        for section in (one, two):
            db.add_all(
                [
                    Assessment(
                        section_id=section.id, name="Exam", kind="exam", weight=60, max_points=100
                    ),
                    Assessment(
                        section_id=section.id, name="Lab", kind="lab", weight=40, max_points=10
                    ),
                ]
            )
        db.commit()
        ids = {name: user.id for name, user in users.items()}
        ids["sections"] = [one.id, two.id]
        ids["assessments"] = [
            (a.id, a.kind, a.section_id)
            for a in db.scalars(select(Assessment).order_by(Assessment.name))
        ]
    devices: dict[str, Device] = {}
    wires: dict[str, Wire] = {}
    for index, username in enumerate(DEVICE_USERS):
        app = make_app(root / f"device{index}", f"sqlite:///{root / f'device{index}.db'}")
        wire = Wire(server)
        http = httpx.Client(transport=wire, base_url=SERVER_URL)
        device = Device(app, http, Path(app.config["PORTAL"]["UPLOAD_DIR"]))
        sync_client.enrol(
            device.engine,
            SERVER_URL,
            enrolment_code(server, username),
            device_name=username,
            client=http,
        )
        device.sync()
        devices[username] = device
        wires[username] = wire
    world = World(root, server, devices, wires, ids)
    world.save()
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = build_world(tmp_path_factory.mktemp("convergence"))
    yield made
    made._close()


class Convergence(RuleBasedStateMachine):
    world: World  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, set[uuid.UUID]] = {name: set() for name in DEVICE_USERS}

    @initialize()
    def start(self) -> None:
        self.world.restore()

    # --- helpers ---

    def device(self, name: str) -> Device:
        return self.world.devices[name]

    def on(self, name: str, actor: str, work: Callable[[Any, User], None]) -> None:
        """Do `work` on a device as `actor`, as a page would: commit, or roll back on a refusal;
        remember every change it left in the outbox."""
        device = self.device(name)
        with device.session():
            db = _db.session
            capture.attribute_to(db, self.world.ids[actor])
            try:
                work(db, db.get(User, self.world.ids[actor]))
                db.commit()
            except PortalError:
                db.rollback()
            self.written[name].update(db.scalars(select(OutboxEntry.change_id)))

    def on_server(self, actor: str, work: Callable[[Any, User], None]) -> None:
        with self.world.server.app_context():
            db = _db.session
            capture.attribute_to(db, self.world.ids[actor])
            try:
                work(db, db.get(User, self.world.ids[actor]))
                db.commit()
            except PortalError:
                db.rollback()

    def assessments(self, kind: str | None = None) -> list[tuple[Any, str, Any]]:
        return [a for a in self.world.ids["assessments"] if kind is None or a[1] == kind]

    # --- work on the devices ---

    @rule(student=st.sampled_from(["stud1", "stud2"]), section=st.integers(0, 1))
    def register(self, student: str, section: int) -> None:
        from portal.registration.services import register

        section_id = self.world.ids["sections"][section]
        self.on(
            student,
            student,
            lambda db, me: register(db, me, db.get(Section, section_id), now=datetime.now(UTC)),
        )

    @rule(student=st.sampled_from(["stud1", "stud2"]), section=st.integers(0, 1))
    def drop(self, student: str, section: int) -> None:
        from portal.registration.services import drop

        section_id = self.world.ids["sections"][section]

        def work(db: Any, me: User) -> None:
            mine = db.scalar(
                select(Registration).filter_by(student_id=me.id, section_id=section_id)
            )
            if mine is not None and mine.status != "dropped":
                drop(db, mine, now=datetime.now(UTC))

        self.on(student, student, work)

    @rule(
        staff=st.sampled_from(["teach1", "lab1"]),
        assessment=st.integers(0, 3),
        student=st.sampled_from(["stud1", "stud2", "stud3"]),
        points=st.integers(0, 10),
    )
    def mark(self, staff: str, assessment: int, student: str, points: int) -> None:
        from portal.grading.services import set_mark

        assessment_id = self.world.ids["assessments"][assessment][0]
        student_id = self.world.ids[student]

        def work(db: Any, me: User) -> None:
            found = db.get(Assessment, assessment_id)
            if found is not None:
                set_mark(db, me, found, student_id, points)

        self.on(staff, staff, work)

    @rule(
        staff=st.sampled_from(["teach1", "lab1"]),
        student=st.sampled_from(["stud1", "stud2", "stud3"]),
        status=st.sampled_from(["present", "late", "absent"]),
    )
    def attendance(self, staff: str, student: str, status: str) -> None:
        from portal.attendance.services import record_attendance

        def work(db: Any, me: User) -> None:
            lab_session = db.scalar(select(LabSession).order_by(LabSession.id).limit(1))
            if lab_session is not None:
                record_attendance(db, me, lab_session, self.world.ids[student], status)

        self.on(staff, staff, work)

    @rule(staff=st.sampled_from(["teach1", "lab1"]), section=st.integers(0, 1))
    def lab_session(self, staff: str, section: int) -> None:
        from portal.attendance.services import LabSessionInput, create_lab_session

        section_id = self.world.ids["sections"][section]

        def work(db: Any, me: User) -> None:
            create_lab_session(
                db,
                me,
                db.get(Section, section_id),
                LabSessionInput(
                    held_on=datetime.now(UTC).date(),
                    starts_at=datetime(2000, 1, 1, 9).time(),
                    ends_at=datetime(2000, 1, 1, 10).time(),
                    room="",
                ),
            )

        self.on(staff, staff, work)

    @rule(
        student=st.sampled_from(["stud1", "stud2"]),
        section=st.integers(0, 1),
        content=st.sampled_from(REPORTS),
    )
    def lab_report(self, student: str, section: int, content: bytes) -> None:
        from portal.submissions import services as submissions
        from portal.submissions import storage

        section_id = self.world.ids["sections"][section]
        device = self.device(student)

        def work(db: Any, me: User) -> None:
            lab = db.scalar(select(Assessment).filter_by(section_id=section_id, kind="lab"))
            if lab is None:
                return
            incoming = storage.receive(io.BytesIO(content), device.upload_dir, 1 << 20)
            submissions.submit(
                db,
                me,
                lab,
                incoming,
                "report.txt",
                upload_dir=device.upload_dir,
                now=datetime.now(UTC),
            )

        self.on(student, student, work)

    # --- work on the server ---

    @rule(
        assessment=st.integers(0, 3),
        student=st.sampled_from(["stud1", "stud2", "stud3"]),
        points=st.integers(0, 10),
    )
    def admin_mark(self, assessment: int, student: str, points: int) -> None:
        from portal.grading.services import set_mark

        assessment_id = self.world.ids["assessments"][assessment][0]
        self.on_server(
            "admin1",
            lambda db, me: set_mark(
                db, me, db.get(Assessment, assessment_id), self.world.ids[student], points
            ),
        )

    @rule(
        student=st.sampled_from(["stud3", "stud4"]), section=st.integers(0, 1), take=st.booleans()
    )
    def server_registration(self, student: str, section: int, take: bool) -> None:
        from portal.registration.services import drop, register

        section_id = self.world.ids["sections"][section]

        def work(db: Any, me: User) -> None:
            mine = db.scalar(
                select(Registration).filter_by(student_id=me.id, section_id=section_id)
            )
            if take:
                register(db, me, db.get(Section, section_id), now=datetime.now(UTC))
            elif mine is not None and mine.status != "dropped":
                drop(db, mine, now=datetime.now(UTC))

        self.on_server(student, work)

    @rule(lab_staff=st.sampled_from(["lab1", "lab2", None]), section=st.integers(0, 1))
    def reassign_labs(self, lab_staff: str | None, section: int) -> None:
        section_id = self.world.ids["sections"][section]

        def work(db: Any, _me: User) -> None:
            db.get(Section, section_id).lab_staff_id = (
                self.world.ids[lab_staff] if lab_staff else None
            )

        self.on_server("admin1", work)

    # --- syncs, some of them cut short ---

    @rule(name=st.sampled_from(DEVICE_USERS))
    def sync(self, name: str) -> None:
        self.device(name).sync()

    @rule(name=st.sampled_from(DEVICE_USERS), path=st.sampled_from(["push", "pull"]))
    def sync_losing_a_reply(self, name: str, path: str) -> None:
        """The server handles the request; its answer never arrives."""
        wire = self.world.wires[name]
        wire.lose_path, wire.let_through = f"/sync/v1/{path}", 0
        try:
            self.device(name).sync()
        except sync_client.SyncError as error:
            assert error.reason == "unreachable"
        finally:
            wire.lose_path = ""

    @rule(name=st.sampled_from(DEVICE_USERS), pages=st.integers(0, 3))
    def sync_killed_mid_pull(self, name: str, pages: int) -> None:
        """Small pages, and the client gone after a few of them (its process killed)."""
        wire = self.world.wires[name]
        wire.lose_path, wire.let_through = "/sync/v1/pull", pages
        settings = self.world.server.config["PORTAL"]
        saved = server_pull.PAGE_ROWS, settings["SYNC_SNAPSHOT_PAGE_ROWS"]
        server_pull.PAGE_ROWS = settings["SYNC_SNAPSHOT_PAGE_ROWS"] = 3
        try:
            self.device(name).sync()
        except sync_client.SyncError as error:
            assert error.reason == "unreachable"
        finally:
            server_pull.PAGE_ROWS, settings["SYNC_SNAPSHOT_PAGE_ROWS"] = saved
            wire.lose_path = ""

    # --- the end: everybody syncs, nobody writes ---

    def teardown(self) -> None:
        for _round in range(4):  # until a round in which nobody had anything to send
            moved = [device.sync() for device in self.world.devices.values()]
            if _round and not any(summary.pushed for summary in moved):
                break
        server = self.world.server
        for name, device in self.world.devices.items():
            assert_replica_matches(server, device)
            with device.session():
                assert _db.session.scalar(select(func.count(OutboxEntry.seq))) == 0, name
                device_id = _db.session.scalar(select(SyncState.device_id))
            with server.app_context():
                db = _db.session
                answers = dict(
                    db.execute(
                        select(ProcessedChange.change_id, ProcessedChange.status).where(
                            ProcessedChange.device_id == device_id
                        )
                    ).all()
                )
                missing = self.written[name] - set(answers)
                assert not missing, f"{name}: {len(missing)} change(s) never answered"
                kept = set(db.scalars(select(SyncConflict.change_id)))
                lost = {c for c, status in answers.items() if status in ("superseded", "refused")}
                assert lost <= kept, f"{name}: a change that lost is not in a conflict record"
        with server.app_context():
            db = _db.session
            for section in db.scalars(select(Section)):
                counted = dict(
                    db.execute(
                        select(Registration.status, func.count())
                        .where(Registration.section_id == section.id)
                        .group_by(Registration.status)
                    ).all()
                )
                assert section.enrolled_count == counted.get("enrolled", 0)
                assert section.waitlist_count == counted.get("waitlisted", 0)
            pairs = db.execute(select(Mark.assessment_id, Mark.student_id)).all()
            assert len(pairs) == len(set(pairs))


def test_every_replica_converges_to_the_server_for_its_scope(world: World) -> None:
    Convergence.world = world
    run_state_machine_as_test(
        Convergence,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        ),
    )


def test_a_snapshot_resumed_after_the_scope_changed_back_keeps_only_the_scope(
    world: World,
) -> None:
    """Found by the machine above: lab staff's snapshot is cut after its first page (lab2 had
    just become staff, and came with it); the section goes back to lab1; the resumed page
    names accounts the first page did not send and fails, so the pull starts again. The scope
    is now the one of the last completed pull, yet the pull that starts again must be a
    snapshot: lab2 must leave the device."""
    Convergence.world = world
    steps = Convergence()
    steps.start()
    steps.reassign_labs(lab_staff="lab2", section=0)
    steps.reassign_labs(lab_staff=None, section=1)
    steps.sync_killed_mid_pull(name="lab1", pages=1)
    steps.reassign_labs(lab_staff=None, section=0)
    steps.reassign_labs(lab_staff="lab1", section=0)
    steps.teardown()
