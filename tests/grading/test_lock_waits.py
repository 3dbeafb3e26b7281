"""Marks while other changes hold the database's locks, on PostgreSQL with real connections:
a mark waits only for changes to its own student's marks or to the whole section, and a wait
that lasts ends as "busy, try again" (503 with Retry-After) rather than a worker killed for
being slow."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.catalogue.services import lock_section
from portal.extensions import db as _db
from portal.grading import services
from portal.models import Assessment, Mark, User
from portal.profile.services import create_token
from tests import factories
from tests.conftest import csrf_token, make_app
from tests.forms import rendered_form

pytestmark = pytest.mark.postgres

V1 = "/api/v1"
BUSY = (
    "Someone else is saving a change to the same records right now, so yours was not saved. "
    "Nothing was lost: try again in a few seconds."
)


@pytest.fixture
def campus(tmp_path, postgres_url):
    app = make_app(tmp_path, postgres_url, LOCK_WAIT_SECONDS=1)
    with app.app_context():
        db = _db.session
        instructor = factories.make_user(db, "instructor")
        section = factories.make_section(db, instructor_id=instructor.id)
        exam = factories.make_assessment(db, section, kind="exam", weight=100, max_points=50)
        students = [factories.make_user(db, "student") for _ in range(2)]
        for student in students:
            factories.enrol(db, student, section)
        token = create_token(
            db, instructor, "marks script", expires_in_days=30, now=factories.now()
        ).secret
        db.commit()
        world = {
            "app": app,
            "instructor": instructor.id,
            "instructor_name": instructor.username,
            "section": section.id,
            "exam": exam.id,
            "students": [s.id for s in students],
            "token": token,
        }
        db.remove()
    yield world
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


@contextmanager
def held(app, change: Callable[[Session], Any]) -> Iterator[None]:
    """Run `change` in a transaction of its own (another thread, another connection) and keep
    that transaction open, its locks held, until the block ends; then roll it back."""
    ready, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        with app.app_context():
            session = _db.session
            try:
                change(session)
            except BaseException as error:  # reported to the test
                failures.append(error)
            finally:
                ready.set()
                release.wait(60)
                session.rollback()
                session.remove()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(60)
    try:
        assert failures == []
        yield
    finally:
        release.set()
        thread.join(60)


def _put_mark(client, campus, student_index: int, points: float):
    path = f"{V1}/assessments/{campus['exam']}/marks/{campus['students'][student_index]}"
    return client.put(
        path, json={"points": points}, headers={"Authorization": f"Bearer {campus['token']}"}
    )


def _enter_mark(campus, student_index: int, points: int) -> Callable[[Session], Any]:
    def change(session: Session) -> None:
        services.set_mark(
            session,
            session.get(User, campus["instructor"]),
            session.get(Assessment, campus["exam"]),
            campus["students"][student_index],
            Decimal(points),
        )

    return change


def test_marks_of_two_students_of_one_section_do_not_wait_for_each_other(campus):
    client = campus["app"].test_client()
    with held(campus["app"], _enter_mark(campus, 0, 30)):  # not committed yet
        other_student = _put_mark(client, campus, 1, 41)
        same_student = _put_mark(client, campus, 0, 42)
    assert other_student.status_code == 200, other_student.json
    # The same student's mark does wait (their grade is one change at a time), and gives up.
    assert same_student.status_code == 503
    # At least the portal's 5 s (the API's rate limiter may ask for longer: its window's end).
    assert int(same_student.headers["Retry-After"]) >= 5
    assert same_student.mimetype == "application/problem+json"
    assert same_student.json["detail"] == BUSY
    with campus["app"].app_context():
        stored = dict(_db.session.execute(select(Mark.student_id, Mark.points)).all())
    assert stored == {campus["students"][1]: 41.0}  # the held one was rolled back


def test_a_long_lock_on_the_section_ends_in_503_with_retry_after_not_a_killed_worker(campus):
    app = campus["app"]
    client = app.test_client()
    login = rendered_form(client.get("/login"), action="/login")
    assert (
        login.submit(
            client, username=campus["instructor_name"], password=factories.PASSWORD
        ).status_code
        == 302
    )
    gradebook = f"/sections/{campus['section']}/gradebook"
    field = f"m.{campus['students'][1]}.{campus['exam']}"
    token = csrf_token(client, gradebook)
    # Finalising, or an assessment being changed, holds the whole section.
    with held(app, lambda session: lock_section(session, campus["section"])):
        api = _put_mark(client, campus, 1, 44)
        page = client.post(
            f"/sections/{campus['section']}/gradebook/cell", data={"csrf_token": token, field: "44"}
        )
        grid = client.post(gradebook, data={"csrf_token": token, field: "44"})
        cell = client.post(
            f"/sections/{campus['section']}/gradebook/cell",
            data={field: "44"},
            headers={"HX-Request": "true", "X-CSRFToken": token},
        )
    assert api.status_code == 503 and int(api.headers["Retry-After"]) >= 5
    assert api.json["detail"] == BUSY
    for answer in (page, grid):
        text = answer.get_data(as_text=True)
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 5
        assert BUSY in text and 'value="44"' in text  # what was typed is still there
    # htmx swaps only 2xx answers: the cell comes back with the message beside the typed value.
    assert cell.status_code == 200
    assert BUSY in cell.get_data(as_text=True) and 'value="44"' in cell.get_data(as_text=True)
    assert _put_mark(client, campus, 1, 44).status_code == 200  # once the lock is gone
