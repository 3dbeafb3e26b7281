"""The access relations (portal/auth/access.py) agree with themselves: in generated small worlds
on a real SQLite file, for every account and every row, the Python predicate a page or the API
checks and the SQL condition a query and a device's sync scope use give the same answer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from portal.auth import access
from portal.models import (
    ASSESSMENT_KINDS,
    ATTENDANCE_STATUSES,
    REGISTRATION_STATUSES,
    ROLES,
    Assessment,
    AttendanceRecord,
    GradeFinalisation,
    LabSession,
    Mark,
    Registration,
    Section,
    StoredFile,
    Submission,
    User,
)
from portal.sync import scopes
from tests import factories

# (table, model, Python predicate) for the tables a device syncs by these relations; the SQL side
# is the device's scope rule for one account (portal/sync/scopes.py, built from access.py).
ROWS: list[tuple[str, Any, Callable[[User, Any], bool]]] = [
    ("registrations", Registration, access.may_read_registration),
    ("assessments", Assessment, access.may_read_assessment),
    ("marks", Mark, access.may_read_mark),
    ("lab_sessions", LabSession, lambda user, row: access.may_read_section_row(user, row.section)),
    (
        "grade_finalisations",
        GradeFinalisation,
        lambda user, row: access.may_read_section_row(user, row.section),
    ),
    ("attendance_records", AttendanceRecord, access.may_read_attendance),
    ("submissions", Submission, access.may_read_submission),
]

# The section-level relations: (Python predicate, ids of the sections it holds for).
SECTION_RELATIONS: list[tuple[Callable[[User, Section], bool], Callable[[User], Select[Any]]]] = [
    (access.instructs, lambda user: access.instructed_sections(user.id, user.role)),
    (access.runs_labs, lambda user: access.lab_staffed_sections(user.id, user.role)),
    (access.staffs, lambda user: access.staffed_sections(user.id, user.role)),
    (access.takes, lambda user: access.taken_sections(user.id)),
    (access.may_read_section_row, lambda user: access.readable_section_ids(user.id, user.role)),
]


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    """A few accounts of each role; sections whose instructor and lab staff are any account or
    nobody (an account whose role changed may still be named); registrations of any status;
    assessments of every kind; marks, lab sessions, attendance and lab reports."""
    roles = [role for role in ROLES for _ in range(draw(st.integers(1, 2)))]
    people = st.none() | st.integers(0, len(roles) - 1)
    some_people = st.sets(st.integers(0, len(roles) - 1), max_size=3)
    sections = []
    for _ in range(draw(st.integers(1, 3))):
        assessments = [
            (kind, draw(some_people), draw(some_people))  # (kind, marked, handed in)
            for kind in draw(st.lists(st.sampled_from(ASSESSMENT_KINDS), max_size=3))
        ]
        sections.append(
            {
                "instructor": draw(people),
                "lab_staff": draw(people),
                "registrations": draw(
                    st.dictionaries(
                        st.integers(0, len(roles) - 1),
                        st.sampled_from(REGISTRATION_STATUSES),
                        max_size=4,
                    )
                ),
                "assessments": assessments,
                "lab_sessions": draw(st.lists(some_people, max_size=2)),  # who was recorded
                "finalised": draw(st.booleans()),
            }
        )
    return {"roles": roles, "sections": sections}


def build(db: Session, world: dict[str, Any]) -> None:
    users = [factories.make_user(db, role) for role in world["roles"]]
    term = factories.make_term(db)
    stored = StoredFile(sha256="0" * 64, size=1, content_type="application/pdf")
    db.add(stored)
    for plan in world["sections"]:
        section = factories.make_section(
            db,
            term=term,
            instructor_id=users[plan["instructor"]].id if plan["instructor"] is not None else None,
            lab_staff_id=users[plan["lab_staff"]].id if plan["lab_staff"] is not None else None,
        )
        for person, status in plan["registrations"].items():
            db.add(Registration(student_id=users[person].id, section_id=section.id, status=status))
        for kind, marked, handed_in in plan["assessments"]:
            assessment = factories.make_assessment(db, section, kind=kind)
            for person in marked:
                db.add(Mark(assessment_id=assessment.id, student_id=users[person].id, points=5))
            for person in handed_in:
                db.add(
                    Submission(
                        assessment_id=assessment.id,
                        student_id=users[person].id,
                        attempt=1,
                        file_sha256=stored.sha256,
                        original_name="report.pdf",
                        size=1,
                        content_type="application/pdf",
                    )
                )
        for n, recorded in enumerate(plan["lab_sessions"]):
            lab_session = LabSession(
                section_id=section.id,
                held_on=date(2026, 10, 1 + n),
                starts_at=time(14, 0),
                ends_at=time(16, 0),
            )
            db.add(lab_session)
            db.flush()
            for person in recorded:
                db.add(
                    AttendanceRecord(
                        lab_session_id=lab_session.id,
                        student_id=users[person].id,
                        status=ATTENDANCE_STATUSES[person % len(ATTENDANCE_STATUSES)],
                    )
                )
        if plan["finalised"]:
            db.add(GradeFinalisation(section_id=section.id, grade_scale=[]))
    db.flush()
    db.expire_all()  # the predicates read relationships as loaded from the database


def _ids(db: Session, model: Any, condition: ColumnElement[bool]) -> set[uuid.UUID]:
    return set(db.scalars(select(model.id).where(condition)))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_python_predicates_and_sql_conditions_agree(db: Session, world: dict[str, Any]) -> None:
    try:
        build(db, world)
        users = list(db.scalars(select(User)))
        sections = list(db.scalars(select(Section)))
        staff_ids = {
            person
            for section in sections
            for person in (section.instructor_id, section.lab_staff_id)
            if person is not None
        }
        assert set(db.scalars(access.section_staff_ids())) == staff_ids
        rows = {name: list(db.scalars(select(model))) for name, model, _ in ROWS}
        assessments = rows["assessments"]
        for user in users:
            account = [(user.id, user.role)]
            for predicate, sql in SECTION_RELATIONS:
                wanted = {section.id for section in sections if predicate(user, section)}
                assert set(db.scalars(sql(user))) == wanted, (predicate.__name__, user.role)
            graded = {a.id for a in assessments if access.may_grade(user, a)}
            condition = access.gradable_assessments(user.id, user.role)
            assert _ids(db, Assessment, condition) == graded, ("may_grade", user.role)
            for name, model, predicate in ROWS:
                wanted = {row.id for row in rows[name] if predicate(user, row)}
                found = _ids(db, model, scopes.condition(name, account))
                assert found == wanted, (name, user.role)
            readable = {
                other.id for other in users if access.may_read_account(user, other, staff_ids)
            }
            assert _ids(db, User, scopes.condition("users", account)) == readable, user.role
    finally:
        db.rollback()
