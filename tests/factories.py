"""Test data builders: plain functions over a session, with sensible defaults."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from portal.accounts.services import hash_password
from portal.models import Course, Meeting, Prerequisite, Registration, Section, Term, User

PASSWORD = "correct-horse"
_counter = itertools.count(1)
_HASH: dict[str, str] = {}


def _password_hash(password: str) -> str:
    if password not in _HASH:
        _HASH[password] = hash_password(password)
    return _HASH[password]


def now() -> datetime:
    return datetime.now(UTC)


def make_user(db: Session, role: str = "student", password: str = PASSWORD, **fields: Any) -> User:
    n = next(_counter)
    values: dict[str, Any] = {
        "username": f"{role.replace('_', '')}{n}",
        "full_name": f"{role.title()} Number{n}",
        "role": role,
        "email": f"{role}{n}@campus.example",
        "password_hash": _password_hash(password),
        "student_number": f"T{n:07d}" if role == "student" else None,
    }
    values.update(fields)
    user = User(**values)
    db.add(user)
    db.flush()
    return user


def make_term(db: Session, *, state: str = "open", max_credits: int = 18, **fields: Any) -> Term:
    """state: 'open' (registration and drop allowed), 'upcoming', 'closed' or 'past-drop'."""
    n = next(_counter)
    today = now()
    opens, closes, drop = {
        "open": (today - timedelta(days=5), today + timedelta(days=20), today + timedelta(days=30)),
        "upcoming": (
            today + timedelta(days=5),
            today + timedelta(days=20),
            today + timedelta(days=30),
        ),
        "closed": (
            today - timedelta(days=40),
            today - timedelta(days=10),
            today + timedelta(days=3),
        ),
        "past-drop": (
            today - timedelta(days=40),
            today - timedelta(days=20),
            today - timedelta(days=10),
        ),
    }[state]
    values: dict[str, Any] = {
        "code": f"T{n}",
        "name": f"Term {n}",
        "starts_on": date.today(),
        "ends_on": date.today() + timedelta(days=100),
        "registration_opens_at": opens,
        "registration_closes_at": closes,
        "add_drop_deadline": drop,
        "max_credits": max_credits,
    }
    values.update(fields)
    term = Term(**values)
    db.add(term)
    db.flush()
    return term


def make_course(
    db: Session, *, credits: int = 3, department: str = "Physics", **fields: Any
) -> Course:
    n = next(_counter)
    values: dict[str, Any] = {
        "code": f"PHY{n:03d}",
        "title": f"Physics {n}",
        "credits": credits,
        "department": department,
    }
    values.update(fields)
    course = Course(**values)
    db.add(course)
    db.flush()
    return course


def make_section(
    db: Session,
    *,
    course: Course | None = None,
    term: Term | None = None,
    capacity: int = 30,
    waitlist_capacity: int = 5,
    meetings: list[tuple[int, str, str]] | None = None,
    **fields: Any,
) -> Section:
    """meetings: (weekday, "HH:MM", "HH:MM") triples; by default a free-standing slot."""
    n = next(_counter)
    course = course or make_course(db)
    term = term or make_term(db)
    section = Section(
        course=course,
        term=term,
        number=f"{n:03d}",
        capacity=capacity,
        waitlist_capacity=waitlist_capacity,
        room="B-101",
        **fields,
    )
    db.add(section)
    db.flush()
    if meetings is None:
        meetings = [(6, f"{n % 24:02d}:00", f"{n % 24:02d}:30")]  # Sunday, distinct per section
    for weekday, start, end in meetings:
        db.add(
            Meeting(
                section=section,
                weekday=weekday,
                starts_at=time.fromisoformat(start),
                ends_at=time.fromisoformat(end),
            )
        )
    db.flush()
    return section


def make_prerequisite(
    db: Session, course: Course, required: Course, min_grade: str = "C"
) -> Prerequisite:
    prerequisite = Prerequisite(
        course_id=course.id, required_course_id=required.id, min_grade=min_grade
    )
    db.add(prerequisite)
    db.flush()
    return prerequisite


def make_completed(db: Session, student: User, course: Course, grade: str) -> Registration:
    """A past enrolment in `course` that ended with `grade`."""
    past = make_term(db, state="past-drop")
    section = make_section(db, course=course, term=past)
    registration = Registration(
        student_id=student.id,
        section_id=section.id,
        status="enrolled",
        final_grade=grade,
        enrolled_at=now(),
    )
    db.add(registration)
    db.flush()
    return registration


# --- Teaching: enrolments, assessments, marks, lab sessions ---------------------------------------


def enrol(db: Session, student: User, section: Section) -> Registration:
    """Enrol directly (no registration rules): for tests about what happens afterwards."""
    registration = Registration(
        student_id=student.id, section_id=section.id, status="enrolled", enrolled_at=now()
    )
    section.enrolled_count += 1
    db.add(registration)
    db.flush()
    return registration


def make_assessment(
    db: Session,
    section: Section,
    *,
    name: str | None = None,
    kind: str = "lab",
    weight: float = 25,
    max_points: float = 10,
    due_at: datetime | None = None,
) -> Any:
    from portal.models import Assessment

    n = next(_counter)
    assessment = Assessment(
        section_id=section.id,
        name=name or f"{kind.capitalize()} {n}",
        kind=kind,
        weight=weight,
        max_points=max_points,
        due_at=due_at,
        position=n,
    )
    db.add(assessment)
    db.flush()
    return assessment


def make_mark(db: Session, assessment: Any, student: User, points: float | None) -> Any:
    from portal.models import Mark

    mark = Mark(assessment_id=assessment.id, student_id=student.id, points=points)
    db.add(mark)
    db.flush()
    return mark


def make_lab_session(db: Session, section: Section, *, held_on: date | None = None) -> Any:
    from portal.models import LabSession

    lab_session = LabSession(
        section_id=section.id,
        held_on=held_on or date.today(),
        starts_at=time(14, 0),
        ends_at=time(16, 0),
        room="LAB-1",
    )
    db.add(lab_session)
    db.flush()
    return lab_session
