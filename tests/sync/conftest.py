"""Sync fixtures: a central server app and device apps, each over its own database file.

In-process tests talk to the server through httpx's WSGI transport (the real HTTP stack of the
client, the real Flask app of the server); tests/sync/test_live.py runs gunicorn on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import Device as DeviceRow
from portal.models import SyncState, User
from portal.sync import scopes
from portal.sync.device import client as sync_client
from portal.sync.device import runner as sync_runner
from portal.sync.server import enrolment
from portal.sync.tables import SYNCED_TABLES
from portal.sync.wire import row_to_json
from tests import factories
from tests.conftest import make_app

SERVER_URL = "http://campus.test"


@dataclass
class Device:
    app: Flask
    http: httpx.Client
    upload_dir: Path

    @property
    def engine(self) -> Any:
        with self.app.app_context():
            return _db.engine

    def sync(self) -> sync_client.Summary:
        return sync_runner.sync_once(self.engine, self.upload_dir, client=self.http)

    def session(self) -> Any:
        return self.app.app_context()


def server_app(tmp_path: Path, database_url: str | None = None) -> Flask:
    return make_app(
        tmp_path / "server",
        database_url or f"sqlite:///{tmp_path / 'server.db'}",
        MODE="server",
    )


@pytest.fixture(params=["sqlite"])
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The server's database: a SQLite file, or (parametrised indirectly with "postgresql") a
    throwaway PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def server(tmp_path: Path, server_database: str) -> Iterator[Flask]:
    app = server_app(tmp_path, server_database)
    yield app
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def wsgi_client(app: Flask) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url=SERVER_URL)


def enrolment_code(server: Flask, username: str) -> str:
    from portal.models import User

    with server.app_context():
        user = _db.session.query(User).filter_by(username=username).one()
        code = enrolment.create_enrolment_code(
            _db.session, user, created_by=None, now=datetime.now(UTC)
        )
        _db.session.commit()
        return code


@pytest.fixture
def make_device(tmp_path: Path, server: Flask) -> Iterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(username: str, *, http: httpx.Client | None = None) -> Device:
        index = len(made)
        app = make_app(tmp_path / f"device{index}", f"sqlite:///{tmp_path / f'device{index}.db'}")
        transport = http or wsgi_client(server)
        device = Device(app, transport, Path(app.config["PORTAL"]["UPLOAD_DIR"]))
        code = enrolment_code(server, username)
        sync_client.enrol(
            device.engine, SERVER_URL, code, device_name=f"dev{index}", client=transport
        )
        device.sync()
        made.append(device)
        return device

    yield make
    for device in made:
        with device.app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def as_user(app: Flask, user_id: Any) -> None:
    """Attribute the changes of the current app context's session to `user_id` (what the
    request hook does for a signed-in person)."""
    from portal.sync import capture

    capture.attribute_to(_db.session, user_id)


@dataclass
class Campus:
    """One term with a section, its instructor, lab staff, students and assessments (ids)."""

    admin: Any
    instructor: Any
    lab_staff: Any
    students: list[Any]
    section: Any
    other_section: Any
    assessment: Any
    lab: Any


@pytest.fixture
def campus(server: Flask) -> Campus:
    from portal.models import Assessment, Registration

    with server.app_context():
        db = _db.session
        admin = factories.make_user(db, "admin", username="admin1")
        instructor = factories.make_user(db, "instructor", username="teach1")
        lab_staff = factories.make_user(db, "lab_staff", username="lab1")
        students = [factories.make_user(db, "student", username=f"stud{n}") for n in range(1, 4)]
        term = factories.make_term(db)
        section = factories.make_section(
            db,
            term=term,
            capacity=2,
            waitlist_capacity=2,
            instructor_id=instructor.id,
            lab_staff_id=lab_staff.id,
        )
        other = factories.make_section(db, term=term, capacity=5)
        for student in students[:2]:
            db.add(Registration(student_id=student.id, section_id=section.id, status="enrolled"))
        section.enrolled_count = 2
        assessment = Assessment(
            section_id=section.id, name="Midterm", kind="exam", weight=40, max_points=100
        )
        lab = Assessment(section_id=section.id, name="Lab 1", kind="lab", weight=10, max_points=10)
        db.add_all([assessment, lab])
        db.commit()
        return Campus(
            admin.id,
            instructor.id,
            lab_staff.id,
            [student.id for student in students],
            section.id,
            other.id,
            assessment.id,
            lab.id,
        )


# A device enrolled (and synced once) for one account of the campus, made before the test
# changes anything: the device most tests start from.


@pytest.fixture
def instructor_laptop(campus: Campus, make_device: Callable[..., Device]) -> Device:
    """teach1's device: the campus section's instructor."""
    return make_device("teach1")


@pytest.fixture
def lab_laptop(campus: Campus, make_device: Callable[..., Device]) -> Device:
    """lab1's device: the campus section's lab staff."""
    return make_device("lab1")


@pytest.fixture
def student_laptop(campus: Campus, make_device: Callable[..., Device]) -> Device:
    """stud1's device: a student enrolled in the campus section."""
    return make_device("stud1")


@pytest.fixture
def newcomer_laptop(campus: Campus, make_device: Callable[..., Device]) -> Device:
    """stud3's device: a student enrolled in no section yet."""
    return make_device("stud3")


# --- Replicas compared ---------------------------------------------------------------------------


def device_accounts(server: Flask, device: Device) -> list[tuple[Any, str]]:
    """(id, role) of the accounts of `device` as the server knows them."""
    with device.session():
        device_id = _db.session.scalar(select(SyncState.device_id))
    with server.app_context():
        row = _db.session.get(DeviceRow, device_id)
        assert row is not None
        return enrolment.device_accounts(_db.session, row)


def password_hash_visible(user_id: Any, accounts: list[tuple[Any, str]]) -> bool:
    """A device receives the password verifier of its own accounts only (offline sign-in)."""
    return any(user_id == account_id for account_id, _role in accounts)


def visible_rows(app: Flask, accounts: list[tuple[Any, str]] | None = None) -> dict[str, dict]:
    """Every synchronised row of `app`'s database as JSON, by table and id; with `accounts`,
    only the rows those accounts may read (scopes.condition), as a device of theirs shows them:
    no password verifier of other accounts, no reference to an account it may not hold."""
    out: dict[str, dict] = {}
    with app.app_context():
        db = _db.session
        visible_users = None
        if accounts is not None:
            visible_users = set(
                db.scalars(select(User.id).where(scopes.condition("users", accounts)))
            )
        for entry in SYNCED_TABLES:
            query = select(entry.model)
            if accounts is not None:
                query = query.where(scopes.condition(entry.name, accounts))
            rows = {}
            for row in db.scalars(query):
                data = row_to_json(entry.table, row)
                if visible_users is not None:
                    if entry.name == "users" and not password_hash_visible(row.id, accounts or []):
                        data["password_hash"] = "!"
                    for column in entry.table.columns:
                        target = next(iter(column.foreign_keys), None)
                        if (
                            target is not None
                            and target.column.table.name == "users"
                            and column.nullable
                            and data[column.name] is not None
                            and uuid.UUID(data[column.name]) not in visible_users
                        ):
                            data[column.name] = None
                rows[data["id"]] = data
            out[entry.name] = rows
        db.rollback()
    return out


def assert_replica_matches(server: Flask, device: Device) -> None:
    """The device holds exactly the server's rows for its scope, field for field."""
    expected = visible_rows(server, device_accounts(server, device))
    held = visible_rows(device.app)
    for table in expected:
        missing = set(expected[table]) - set(held[table])
        extra = set(held[table]) - set(expected[table])
        assert not missing, f"{table}: the device lacks {len(missing)} row(s) in its scope"
        assert not extra, f"{table}: the device holds {len(extra)} row(s) outside its scope"
        for row_id, row in expected[table].items():
            assert held[table][row_id] == row, f"{table} {row_id} differs on the device"
