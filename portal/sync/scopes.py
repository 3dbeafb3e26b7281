"""What a device may hold: one rule per role and table, read by the pull, the push
authorisation and the tests alike.

A rule takes the account's id and returns the SQL condition on that table's rows that the
account may read. A device holds the union over its accounts. The catalogue (terms, courses,
sections, meetings, prerequisites, grade scales) is open to every role; everything personal is
narrowed: a student's laptop holds its own registrations, marks, attendance and submissions,
and no other account's password hash (see `password_hash_visible`).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement as _Element
from sqlalchemy.sql.util import find_tables
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

from portal.models import (
    ROLES,
    Assessment,
    AttendanceRecord,
    GradeFinalisation,
    LabSession,
    Mark,
    Registration,
    Section,
    Submission,
    SyncConflict,
    User,
)

Rule = Callable[[uuid.UUID], ColumnElement[bool]]

ACTIVE_REGISTRATION = ("enrolled", "waitlisted")


class _AmongIds(_Element[bool]):
    """`column IN (ids)`, written `column = ANY(ARRAY(ids))` on PostgreSQL: the few ids of an
    account's sections (or their assessments, lab sessions) are read first, and the table is
    then read through its index on `column`, rather than scanned whole and joined with them.
    (Elsewhere: `column IN (ids)`.)"""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, ids: Select[Any]) -> None:
        self.column = column
        self.ids = ids


@compiles(_AmongIds)
def _among_ids(element: _AmongIds, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.in_(element.ids), **kw)  # type: ignore[no-any-return]


@compiles(_AmongIds, "postgresql")
def _among_ids_postgresql(element: _AmongIds, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    ids = compiler.process(element.ids.scalar_subquery(), **kw)  # "(SELECT ...)"
    return f"{column} = ANY(ARRAY{ids})"


def _in(column: Any, ids: Select[Any]) -> ColumnElement[bool]:
    return _AmongIds(column, ids)


def _everything(_user_id: uuid.UUID) -> ColumnElement[bool]:
    return true()


def _taken(user_id: uuid.UUID) -> Select[Any]:
    """Sections the student is enrolled or waitlisted in."""
    return select(Registration.section_id).where(
        Registration.student_id == user_id, Registration.status.in_(ACTIVE_REGISTRATION)
    )


def _taught(user_id: uuid.UUID) -> Select[Any]:
    """Sections the account teaches or runs the labs of."""
    return select(Section.id).where(
        or_(Section.instructor_id == user_id, Section.lab_staff_id == user_id)
    )


def _lab_staffed(user_id: uuid.UUID) -> Select[Any]:
    return select(Section.id).where(Section.lab_staff_id == user_id)


def _instructed(user_id: uuid.UUID) -> Select[Any]:
    return select(Section.id).where(Section.instructor_id == user_id)


def _staff_ids() -> Any:
    return (
        select(Section.instructor_id)
        .where(Section.instructor_id.is_not(None))
        .union(select(Section.lab_staff_id).where(Section.lab_staff_id.is_not(None)))
    )


def _visible_assessments(user_id: uuid.UUID) -> ColumnElement[bool]:
    """Instructors see every assessment of their sections; lab staff the labs only (as the
    gradebook shows them)."""
    return or_(
        Assessment.section_id.in_(_instructed(user_id)),
        and_(Assessment.section_id.in_(_lab_staffed(user_id)), Assessment.kind == "lab"),
    )


def _staff_assessment_ids(user_id: uuid.UUID) -> Select[Any]:
    return select(Assessment.id).where(_visible_assessments(user_id))


CATALOGUE: dict[str, Rule] = {
    "terms": _everything,
    "courses": _everything,
    "prerequisites": _everything,
    "sections": _everything,
    "meetings": _everything,
    "grade_scales": _everything,
}


def _taken_assessments(user_id: uuid.UUID) -> Select[Any]:
    return select(Assessment.id).where(Assessment.section_id.in_(_taken(user_id)))


def _own_submissions(user_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(
        Submission.student_id == user_id, Submission.assessment_id.in_(_taken_assessments(user_id))
    )


# A student's own marks, attendance and lab reports go with the sections they take: a course
# dropped takes them off the device with its assessments and lab sessions (rows that point to
# a parent the device no longer holds could not stay).
STUDENT: dict[str, Rule] = {
    **CATALOGUE,
    "users": lambda u: or_(User.id == u, _in(User.id, _staff_ids())),
    "registrations": lambda u: Registration.student_id == u,
    "assessments": lambda u: Assessment.section_id.in_(_taken(u)),
    "marks": lambda u: and_(Mark.student_id == u, Mark.assessment_id.in_(_taken_assessments(u))),
    "grade_finalisations": lambda u: GradeFinalisation.section_id.in_(_taken(u)),
    "lab_sessions": lambda u: LabSession.section_id.in_(_taken(u)),
    "attendance_records": lambda u: and_(
        AttendanceRecord.student_id == u,
        AttendanceRecord.lab_session_id.in_(
            select(LabSession.id).where(LabSession.section_id.in_(_taken(u)))
        ),
    ),
    "stored_files": lambda u: _file_of(_own_submissions(u)),
    "submissions": _own_submissions,
    "sync_conflicts": lambda u: SyncConflict.author_id == u,
}

STAFF: dict[str, Rule] = {
    **CATALOGUE,
    "users": lambda u: or_(
        User.id == u,
        _in(User.id, _staff_ids()),
        _in(
            User.id, select(Registration.student_id).where(_in(Registration.section_id, _taught(u)))
        ),
    ),
    "registrations": lambda u: _in(Registration.section_id, _taught(u)),
    "assessments": _visible_assessments,
    "marks": lambda u: _in(Mark.assessment_id, _staff_assessment_ids(u)),
    "grade_finalisations": lambda u: GradeFinalisation.section_id.in_(_taught(u)),
    "lab_sessions": lambda u: LabSession.section_id.in_(_taught(u)),
    "attendance_records": lambda u: _in(
        AttendanceRecord.lab_session_id,
        select(LabSession.id).where(LabSession.section_id.in_(_taught(u))),
    ),
    "stored_files": lambda u: _file_of(_in(Submission.assessment_id, _staff_assessment_ids(u))),
    "submissions": lambda u: _in(Submission.assessment_id, _staff_assessment_ids(u)),
    "sync_conflicts": lambda u: SyncConflict.author_id == u,
}

ADMIN: dict[str, Rule] = dict.fromkeys(STAFF, _everything)

RULES: dict[str, dict[str, Rule]] = {
    "student": STUDENT,
    "instructor": STAFF,
    "lab_staff": STAFF,
    "admin": ADMIN,
}
assert set(RULES) == set(ROLES), "every role needs its scope rules"


def _file_of(submissions: ColumnElement[bool]) -> ColumnElement[bool]:
    from portal.models import StoredFile

    return StoredFile.sha256.in_(select(Submission.file_sha256).where(submissions))


def condition(table_name: str, accounts: Iterable[tuple[uuid.UUID, str]]) -> ColumnElement[bool]:
    """The rows of `table_name` that a device holding these (id, role) accounts may read."""
    parts = [RULES[role][table_name](user_id) for user_id, role in accounts if role in RULES]
    if not parts:
        return false()
    return or_(*parts)


@functools.cache
def tables_read(table_name: str, roles: frozenset[str]) -> frozenset[str]:
    """The other tables whose rows decide which rows of `table_name` accounts of these roles
    may read (found in the rules' own SQL; the same for every account of a role)."""
    rule = condition(table_name, [(uuid.UUID(int=0), role) for role in sorted(roles)])
    found = find_tables(rule, check_columns=True)
    return frozenset(table.name for table in found if table.name != table_name)


def reads_everything(table_name: str, accounts: Iterable[tuple[uuid.UUID, str]]) -> bool:
    """Whether these accounts may read every row of `table_name` (an administrator's)."""
    return any(RULES[role][table_name] is _everything for _user_id, role in accounts)


def password_hash_visible(user_id: uuid.UUID, accounts: Iterable[tuple[uuid.UUID, str]]) -> bool:
    """A device receives the password verifier of its own accounts only (offline sign-in)."""
    return any(user_id == account_id for account_id, _role in accounts)


def in_scope(
    db: Session, table_name: str, row_id: uuid.UUID, accounts: list[tuple[uuid.UUID, str]]
) -> bool:
    """Whether one row is readable by the device's accounts (push authorisation)."""
    from portal.sync.tables import BY_NAME

    model: Any = BY_NAME[table_name].model
    found = db.scalar(
        select(model.id).where(model.id == row_id, condition(table_name, accounts)).limit(1)
    )
    return found is not None


def fingerprint(db: Session, accounts: list[tuple[uuid.UUID, str]]) -> str:
    """Changes whenever what the accounts may read changes shape (a section assigned or
    reassigned, a course taken or dropped, an account joining, an assessment of the lab staff's
    sections made a lab or no longer one): the device then takes a full snapshot of its scope
    and removes what left it."""
    digest = hashlib.sha256()
    if any(role != "admin" for _user_id, role in accounts):
        # Every non-admin scope holds the accounts of the sections' staff: someone who stops
        # being staff anywhere leaves it (someone new arrives with the section that names them).
        staff = sorted(str(user_id) for user_id in db.scalars(_staff_ids()))
        digest.update(repr(staff).encode())
    for user_id, role in sorted(accounts, key=lambda account: str(account[0])):
        digest.update(f"{user_id}:{role};".encode())
        if role == "admin":
            continue
        taught = db.execute(
            select(Section.id, Section.instructor_id == user_id, Section.lab_staff_id == user_id)
            .where(Section.id.in_(_taught(user_id)))
            .order_by(Section.id)
        ).all()
        taken = db.scalars(_taken(user_id).order_by(Registration.section_id)).all()
        digest.update(repr([tuple(map(str, row)) for row in taught]).encode())
        digest.update(repr([str(section_id) for section_id in taken]).encode())
        # The assessments of the account's sections that its rule hides (lab staff read the
        # labs only): one whose kind changes enters or leaves the scope with its marks and
        # lab reports, although no row of theirs changed. (Left out when there are none, so
        # that scopes without any keep the fingerprint they had.)
        hidden = db.scalars(
            select(Assessment.id)
            .where(
                Assessment.section_id.in_([*(row[0] for row in taught), *taken]),
                not_(RULES[role]["assessments"](user_id)),
            )
            .order_by(Assessment.id)
        ).all()
        if hidden:
            digest.update(repr([str(assessment_id) for assessment_id in hidden]).encode())
    return digest.hexdigest()
