"""Sync fixtures: a central server app and device apps, each over its own database file.

In-process tests talk to the server through httpx's WSGI transport (the real HTTP stack of the
client, the real Flask app of the server); tests/sync/test_live.py runs gunicorn on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from portal.extensions import db as _db
from portal.sync import client as sync_client
from portal.sync import services as sync_services
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
        return sync_client.sync_once(self.engine, self.upload_dir, client=self.http)

    def session(self) -> Any:
        return self.app.app_context()


def server_app(tmp_path: Path, database_url: str | None = None) -> Flask:
    return make_app(
        tmp_path / "server",
        database_url or f"sqlite:///{tmp_path / 'server.db'}",
        MODE="server",
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Flask]:
    app = server_app(tmp_path)
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
        code = sync_services.create_enrolment_code(
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

    _db.session.info[capture.ACTOR] = user_id


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
