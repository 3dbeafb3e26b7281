"""API fixtures: a small world (one section with its staff, an enrolled student, an assessment, a
lab session and a submission) and clients that call the API with a personal token."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db as _db
from portal.profile.services import create_token
from portal.submissions import services as submission_services
from portal.submissions import storage
from tests import factories

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
ROLES = ("student", "instructor", "lab_staff", "admin")


@dataclass
class World:
    users: dict[str, Any]  # role -> user id
    usernames: dict[str, str]
    tokens: dict[str, str]  # role -> token secret
    section_id: Any
    other_section_id: Any
    course_code: str
    term_id: Any
    course_id: Any
    registration_id: Any
    lab_assessment_id: Any
    exam_assessment_id: Any
    lab_session_id: Any
    submission_id: Any
    extra: dict[str, Any] = field(default_factory=dict)


def build_api_world(app: Flask) -> World:
    with app.app_context():
        db = _db.session
        users = {role: factories.make_user(db, role) for role in ROLES}
        section = factories.make_section(
            db, instructor_id=users["instructor"].id, lab_staff_id=users["lab_staff"].id
        )
        other = factories.make_section(db, term=section.term)
        registration = factories.enrol(db, users["student"], section)
        lab = factories.make_assessment(db, section, kind="lab", weight=40)
        exam = factories.make_assessment(db, section, kind="exam", weight=60)
        factories.make_mark(db, lab, users["student"], 7.5)
        lab_session = factories.make_lab_session(db, section)
        upload_dir = Path(app.config["PORTAL"]["UPLOAD_DIR"])
        upload_dir.mkdir(parents=True, exist_ok=True)
        incoming = storage.receive(io.BytesIO(PDF), upload_dir, 1024 * 1024)
        submission = submission_services.submit(
            db,
            users["student"],
            lab,
            incoming,
            "report.pdf",
            upload_dir=upload_dir,
            now=factories.now(),
        )
        tokens = {
            role: create_token(
                db, user, f"{role} script", expires_in_days=30, now=factories.now()
            ).secret
            for role, user in users.items()
        }
        db.commit()
        return World(
            users={role: user.id for role, user in users.items()},
            usernames={role: user.username for role, user in users.items()},
            tokens=tokens,
            section_id=section.id,
            other_section_id=other.id,
            course_code=section.course.code,
            term_id=section.term_id,
            course_id=section.course_id,
            registration_id=registration.id,
            lab_assessment_id=lab.id,
            exam_assessment_id=exam.id,
            lab_session_id=lab_session.id,
            submission_id=submission.id,
        )


class ApiClient:
    """A test client that sends one role's token with every call."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def open(self, method: str, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.open("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.open("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.open("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return self.open("DELETE", path, **kwargs)


@pytest.fixture
def world(app: Flask) -> World:
    return build_api_world(app)


@pytest.fixture
def api_as(app: Flask, world: World):  # type: ignore[no-untyped-def]
    """api_as("student") -> an ApiClient with that role's token; api_as(None): anonymous."""

    def make(role: str | None) -> ApiClient:
        return ApiClient(app.test_client(), world.tokens[role] if role else None)

    return make
