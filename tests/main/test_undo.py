"""Undo beside the success message of a destructive action (portal/web.py `Undo`).

For every action that offers one, the Undo button the page renders is a plain form that brings
the old state back through the ordinary route: the same roles, a CSRF token, an audit entry
like the action's own, and a clear refusal once there is nothing left to undo.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.extensions import db as _db
from portal.models import (
    Assessment,
    AuditEntry,
    Course,
    LabSession,
    Registration,
    Section,
    Term,
    User,
)
from tests import factories
from tests.auth.test_rbac_matrix import _login
from tests.conftest import BOTH_DATABASES, csrf_token, post_form
from tests.forms import RenderedForm, rendered_form

pytestmark = BOTH_DATABASES  # the restores lock the section and read again: both databases


@dataclass(frozen=True)
class Undoable:
    """One destructive action and how to see that it was undone."""

    role: str  # who does it
    outsider: str  # a role the action's route refuses (403)
    arrange: Callable[[Session, User], uuid.UUID]  # the record acted on, for `actor`
    path: str  # the action's route ({id}: the record)
    data: dict[str, str]
    message: str  # the success message that carries the Undo button
    undone: Callable[[Session, uuid.UUID], bool]  # the old state is back
    audit_action: str | None  # what the Undo records (None: the action records nothing either)
    nothing_left: str  # the refusal of a second Undo
    label: str = "Undo"


def _term(db: Session, actor: User) -> uuid.UUID:
    return factories.make_term(db, code="UNDO-T").id


def _course(db: Session, actor: User) -> uuid.UUID:
    return factories.make_course(db, code="UNDO101").id


def _section(db: Session, actor: User) -> uuid.UUID:
    return factories.make_section(db).id


def _account(db: Session, actor: User) -> uuid.UUID:
    return factories.make_user(db, "student", username="leaving").id


def _assessment(db: Session, actor: User) -> uuid.UUID:
    section = factories.make_section(db, instructor_id=actor.id)
    return factories.make_assessment(db, section, name="Quiz 1", kind="assignment").id


def _lab_session(db: Session, actor: User) -> uuid.UUID:
    section = factories.make_section(db, lab_staff_id=actor.id)
    return factories.make_lab_session(db, section).id


def _registration(db: Session, actor: User) -> uuid.UUID:
    from portal.registration.services import register

    section = factories.make_section(db, capacity=1, waitlist_capacity=2)
    return register(db, actor, section, now=factories.now()).id


def _active(model: type[Any]) -> Callable[[Session, uuid.UUID], bool]:
    return lambda db, row_id: db.get(model, row_id).deleted_at is None


CASES = {
    "archive-term": Undoable(
        "admin",
        "instructor",
        _term,
        "/admin/terms/{id}/archive",
        {"archive": "1"},
        "The term UNDO-T was archived.",
        _active(Term),
        "term.restore",
        "Nothing to undo: the term UNDO-T is already active.",
    ),
    "archive-course": Undoable(
        "admin",
        "student",
        _course,
        "/admin/courses/{id}/archive",
        {"archive": "1"},
        "The course UNDO101 was archived.",
        _active(Course),
        "course.restore",
        "Nothing to undo: the course UNDO101 is already active.",
    ),
    "archive-section": Undoable(
        "admin",
        "lab_staff",
        _section,
        "/admin/sections/{id}/archive",
        {"archive": "1"},
        "was archived.",
        _active(Section),
        "section.restore",
        "is already active.",
    ),
    "deactivate-account": Undoable(
        "admin",
        "instructor",
        _account,
        "/admin/users/{id}/active",
        {"active": "0"},
        "Account leaving deactivated.",
        lambda db, user_id: db.get(User, user_id).active,
        "account.activate",
        "Nothing to undo: the account leaving is already active.",
    ),
    "remove-assessment": Undoable(
        "instructor",
        "lab_staff",
        _assessment,
        "/assessments/{id}/delete",
        {},
        "Assessment &#39;Quiz 1&#39; removed.",
        _active(Assessment),
        "assessment.restore",
        "Nothing to undo: Quiz 1 is not removed.",
    ),
    "delete-lab-session": Undoable(
        "lab_staff",
        "student",
        _lab_session,
        "/lab-sessions/{id}/delete",
        {},
        "deleted.",
        _active(LabSession),
        "lab_session.restore",
        "is not deleted.",
    ),
    # No true undo: the seat went to the next student. Register again is an ordinary
    # registration (not audited, like the drop and every registration).
    "drop": Undoable(
        "student",
        "admin",
        _registration,
        "/registrations/{id}/drop",
        {},
        "You dropped",
        lambda db, reg_id: db.get(Registration, reg_id).status == "enrolled",
        None,
        "You are already enrolled in",
        label="Register again",
    ),
}


def _audit_count(app: Any, action: str | None) -> int:
    with app.app_context():
        query = select(func.count()).select_from(AuditEntry)
        if action:
            query = query.where(AuditEntry.action == action)
        return _db.session.scalar(query) or 0


def _undo_form(page: Any) -> RenderedForm:
    form = rendered_form(page, id="undo-form")
    assert form.method == "post" and form.values["csrf_token"] != [""]
    return form


@pytest.mark.parametrize("name", list(CASES))
def test_undo_restores_through_the_ordinary_route(app, client, login_as, name):
    case = CASES[name]
    actor = login_as(case.role)
    with app.app_context():
        row_id = case.arrange(_db.session, _db.session.get(User, actor.id))
        outsider = factories.make_user(_db.session, case.outsider)
        _db.session.commit()
        outsider_name = outsider.username
    path = case.path.format(id=row_id)

    page = post_form(client, path, case.data, token_from="/", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and case.message in text
    form = _undo_form(page)
    assert f">{case.label}</button>" in text
    assert "data-confirm" not in form.attributes  # undoing asks nothing
    with app.app_context():
        assert not case.undone(_db.session, row_id)
    audited = _audit_count(app, case.audit_action)

    # Without the CSRF token: refused, nothing changes.
    without_token = [(key, value) for key, value in form.data() if key != "csrf_token"]
    assert client.post(form.action, data=dict(without_token)).status_code == 400
    # A role the action's route refuses is refused the Undo too.
    other = _login(app, outsider_name)
    stranger = {**dict(without_token), "csrf_token": csrf_token(other, "/")}
    assert other.post(form.action, data=stranger).status_code == 403
    with app.app_context():
        assert not case.undone(_db.session, row_id)

    undone = client.post(form.action, data=dict(form.data()), follow_redirects=True)
    assert undone.status_code == 200
    assert 'class="alert alert-success' in undone.get_data(as_text=True)
    with app.app_context():
        assert case.undone(_db.session, row_id)
    if case.audit_action:
        assert _audit_count(app, case.audit_action) == audited + 1
        with app.app_context():
            entry = _db.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == case.audit_action)
                .order_by(AuditEntry.created_at.desc())
            ).first()
            assert entry.actor_id == actor.id and entry.entity_id == str(row_id)

    # The same Undo again (a second tab, a double click): refused, said, nothing recorded.
    again = client.post(form.action, data=dict(form.data()), follow_redirects=True)
    text = again.get_data(as_text=True)
    assert 'class="alert alert-danger' in text and case.nothing_left in text
    assert 'id="undo-form"' not in text
    if case.audit_action:
        assert _audit_count(app, case.audit_action) == audited + 1


def test_a_repeated_archive_offers_no_undo(app, client, login_as):
    login_as("admin")
    with app.app_context():
        term_id = factories.make_term(_db.session, code="TWICE", deleted_at=factories.now()).id
        _db.session.commit()
    page = post_form(
        client, f"/admin/terms/{term_id}/archive", {"archive": "1"}, "/", follow_redirects=True
    )
    text = page.get_data(as_text=True)
    assert "The term TWICE is already archived." in text and 'id="undo-form"' not in text


def test_restoring_an_assessment_keeps_the_rules_of_adding_one(app, client, login_as):
    """Meanwhile the weights were used up, or the grades were made final: the Undo says so."""
    instructor = login_as("instructor")
    with app.app_context():
        section = factories.make_section(_db.session, instructor_id=instructor.id)
        quiz = factories.make_assessment(_db.session, section, name="Quiz", weight=40)
        section_id, quiz_id = section.id, quiz.id
        _db.session.commit()
    page = post_form(client, f"/assessments/{quiz_id}/delete", {}, "/", follow_redirects=True)
    undo = _undo_form(page)
    with app.app_context():
        exam = factories.make_assessment(
            _db.session, _db.session.get(Section, section_id), name="Exam", weight=70
        )
        _db.session.commit()
        exam_id = exam.id
    refused = client.post(undo.action, data=dict(undo.data()), follow_redirects=True)
    assert "Restoring &#39;Quiz&#39; (40%) would bring the weights to 110%" in refused.get_data(
        as_text=True
    )
    with app.app_context():
        assert _db.session.get(Assessment, quiz_id).deleted_at is not None
        _db.session.get(Assessment, exam_id).weight = 100
        _db.session.commit()
        from portal.grading.services import finalise_section

        finalise_section(
            _db.session,
            _db.session.get(User, instructor.id),
            _db.session.get(Section, section_id),
            now=factories.now(),
        )
        _db.session.commit()
    refused = client.post(undo.action, data=dict(undo.data()), follow_redirects=True)
    assert "are final: assessments can no longer be changed" in refused.get_data(as_text=True)


def test_register_again_after_a_drop_joins_the_end_of_the_waitlist(app, client, login_as):
    """The seat went to the first waitlisted student: Register again says it is not kept, and
    registers under the normal rules (here: the end of the waitlist)."""
    student = login_as("student")
    with app.app_context():
        from portal.registration.services import register

        section = factories.make_section(_db.session, capacity=1, waitlist_capacity=3)
        mine = register(_db.session, student, section, now=factories.now())
        waiting = factories.make_user(_db.session, "student")
        register(_db.session, waiting, section, now=factories.now())
        _db.session.commit()
        registration_id, waiting_id = mine.id, waiting.id
    page = post_form(
        client, f"/registrations/{registration_id}/drop", {}, "/", follow_redirects=True
    )
    text = page.get_data(as_text=True)
    assert "Your seat is not kept for you: you get a seat if one is free, otherwise you join " in (
        text
    )
    form = _undo_form(page)
    assert form.values["next"] == ["/registrations"]
    again = client.post(form.action, data=dict(form.data()), follow_redirects=True)
    assert "you are on the waitlist at position 2" in again.get_data(as_text=True)
    with app.app_context():
        assert _db.session.get(Registration, registration_id).status == "waitlisted"
        held = _db.session.scalar(select(Registration).filter_by(student_id=waiting_id))
        assert held.status == "enrolled"


def test_no_register_again_when_registration_has_closed(app, client, login_as):
    student = login_as("student")
    with app.app_context():
        term = factories.make_term(_db.session, state="closed")  # dropping is still allowed
        section = factories.make_section(_db.session, term=term)
        registration_id = factories.enrol(_db.session, student, section).id
        _db.session.commit()
    page = post_form(
        client, f"/registrations/{registration_id}/drop", {}, "/", follow_redirects=True
    )
    text = page.get_data(as_text=True)
    assert "You dropped" in text and 'id="undo-form"' not in text


def test_an_undone_removal_travels_to_devices_like_the_removal(tmp_path, database_url):
    """On the central server the Undo is a change like any other: captured in the change log
    (what devices pull), in the same transaction."""
    from portal.models import ChangeLogEntry
    from tests.conftest import make_app

    server = make_app(tmp_path / "server", database_url, MODE="server")
    with server.app_context():
        instructor = factories.make_user(_db.session, "instructor")
        section = factories.make_section(_db.session, instructor_id=instructor.id)
        quiz_id = factories.make_assessment(_db.session, section, name="Quiz").id
        _db.session.commit()
        username = instructor.username

    def logged_changes() -> int:
        with server.app_context():
            return _db.session.scalar(
                select(func.count())
                .select_from(ChangeLogEntry)
                .where(ChangeLogEntry.table_name == "assessments", ChangeLogEntry.row_id == quiz_id)
            )

    try:
        client = _login(server, username)
        before = logged_changes()
        token = csrf_token(client, "/")
        page = client.post(
            f"/assessments/{quiz_id}/delete", data={"csrf_token": token}, follow_redirects=True
        )
        assert logged_changes() == before + 1
        undo = _undo_form(page)
        client.post(undo.action, data=dict(undo.data()))
        assert logged_changes() == before + 2
        with server.app_context():
            assert _db.session.get(Assessment, quiz_id).deleted_at is None
    finally:
        with server.app_context():
            _db.session.remove()
            _db.engine.dispose()
