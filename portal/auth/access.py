"""Who may see or mark which rows: every relation between an account and a row, written once.

`policy.py` gates routes by role; this module says which *rows* an account reaches through a
route it may open. Each relation is a Python predicate over loaded objects (a page, the API or a
service checking one section, assessment or mark) beside its SQL condition (a query over many
rows: lists, a device's sync scope). A property test (tests/auth/test_access.py) builds small
worlds and checks that the two agree for every account and row.

Relations are role-aware in both forms: an account reaches a section as its instructor only
while its role is instructor, as its lab staff only while its role is lab staff.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement as _Element
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

from portal.models import (
    ASSESSMENT_KINDS,
    Assessment,
    AttendanceRecord,
    GradeFinalisation,
    LabSession,
    Mark,
    Registration,
    Section,
    Submission,
    User,
)

ACTIVE_REGISTRATION = ("enrolled", "waitlisted")
"""A student takes a section while enrolled or waitlisted in it."""

WRITTEN_ONCE = frozenset(
    {
        (Registration.__tablename__, "student_id"),
        (Registration.__tablename__, "section_id"),
        (Assessment.__tablename__, "section_id"),
        (LabSession.__tablename__, "section_id"),
        (Submission.__tablename__, "student_id"),
        (Submission.__tablename__, "assessment_id"),
        (Submission.__tablename__, "file_sha256"),  # another attempt is another row
    }
)
"""The columns (table, column) the relations below read that never change once their row is
written: whose a row is and where it belongs. Which rows an account reaches moves with the other
columns they read (a section's staff, a registration's status, an assessment's kind), and a
device's scope fingerprint reads those (sync/scopes.py `fingerprint`; tests/sync/test_scopes.py
checks that it reads every one)."""


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


def among(column: Any, ids: Select[Any]) -> ColumnElement[bool]:
    """`column IN (ids)` for a short list of ids read first (see `_AmongIds`)."""
    return _AmongIds(column, ids)


class _Account(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def role(self) -> str: ...


class _Owned(Protocol):
    @property
    def student_id(self) -> uuid.UUID: ...


class _Taught(Protocol):
    """A section, or what names its instructor (a conflict's record)."""

    @property
    def instructor_id(self) -> uuid.UUID | None: ...


# --- Section staff: the instructor and the lab staff of a section ---------------------------------


def instructs(user: _Account, section: _Taught) -> bool:
    """`user` is the section's instructor."""
    return user.role == "instructor" and section.instructor_id == user.id


def instructed_by(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    """The sections `instructs` holds for (a condition on sections)."""
    return Section.instructor_id == user_id if role == "instructor" else false()


def instructed_sections(user_id: uuid.UUID, role: str) -> Select[Any]:
    """The ids of the sections `instructs` holds for."""
    return select(Section.id).where(instructed_by(user_id, role))


def runs_labs(user: _Account, section: Section) -> bool:
    """`user` is the section's lab staff."""
    return user.role == "lab_staff" and section.lab_staff_id == user.id


def lab_staffed_by(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    """The sections `runs_labs` holds for (a condition on sections)."""
    return Section.lab_staff_id == user_id if role == "lab_staff" else false()


def lab_staffed_sections(user_id: uuid.UUID, role: str) -> Select[Any]:
    """The ids of the sections `runs_labs` holds for."""
    return select(Section.id).where(lab_staffed_by(user_id, role))


def staffs(user: _Account, section: Section) -> bool:
    """`user` teaches the section or runs its labs."""
    return instructs(user, section) or runs_labs(user, section)


def staffed_by(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    """The sections `staffs` holds for (a condition on sections)."""
    if role == "instructor":
        return instructed_by(user_id, role)
    return lab_staffed_by(user_id, role)


def staffed_sections(user_id: uuid.UUID, role: str) -> Select[Any]:
    """The ids of the sections `staffs` holds for."""
    return select(Section.id).where(staffed_by(user_id, role))


def staffing(user_id: uuid.UUID, role: str) -> Select[uuid.UUID, bool, bool]:
    """The sections `staffs` holds for, each with whether the account is its instructor and
    whether it is its lab staff (by id: the role decides which counts)."""
    return (
        select(Section.id, Section.instructor_id == user_id, Section.lab_staff_id == user_id)
        .where(Section.id.in_(staffed_sections(user_id, role)))
        .order_by(Section.id)
    )


def section_staff_ids() -> Any:
    """Every account named as some section's instructor or lab staff."""
    return (
        select(Section.instructor_id)
        .where(Section.instructor_id.is_not(None))
        .union(select(Section.lab_staff_id).where(Section.lab_staff_id.is_not(None)))
    )


def may_manage(user: _Account, section: Section) -> bool:
    """Assessments, weights and finalising: the section's instructor or an administrator."""
    return user.role == "admin" or instructs(user, section)


def may_take_attendance(user: _Account, section: Section) -> bool:
    """Lab sessions and attendance (and the section's roster export): its staff or an
    administrator."""
    return user.role == "admin" or staffs(user, section)


# --- Students: their own rows, the sections they take ---------------------------------------------


def owns(user: _Account, row: _Owned) -> bool:
    """The row (registration, mark, attendance record, submission) is the student's own."""
    return row.student_id == user.id


def takes(user: _Account, section: Section) -> bool:
    """`user` is enrolled or waitlisted in the section."""
    return any(
        registration.student_id == user.id and registration.status in ACTIVE_REGISTRATION
        for registration in section.registrations
    )


def taken_sections(user_id: uuid.UUID) -> Select[Any]:
    """The ids of the sections `takes` holds for."""
    return select(Registration.section_id).where(
        Registration.student_id == user_id, Registration.status.in_(ACTIVE_REGISTRATION)
    )


def _taken_assessments(user_id: uuid.UUID) -> Select[Any]:
    return select(Assessment.id).where(Assessment.section_id.in_(taken_sections(user_id)))


def _taken_lab_sessions(user_id: uuid.UUID) -> Select[Any]:
    return select(LabSession.id).where(LabSession.section_id.in_(taken_sections(user_id)))


# --- Assessment kinds each role sees and marks ----------------------------------------------------


def gradable_kinds(user: _Account, section: Section) -> tuple[str, ...]:
    """The assessment kinds `user` may see and mark in `section` (empty: none): every kind for
    an administrator and the section's instructor, the labs for its lab staff."""
    if user.role == "admin" or instructs(user, section):
        return ASSESSMENT_KINDS
    if runs_labs(user, section):
        return ("lab",)
    return ()


def may_grade(user: _Account, assessment: Assessment) -> bool:
    """`user` may see and mark this assessment (`gradable_kinds`)."""
    return assessment.kind in gradable_kinds(user, assessment.section)


def gradable_assessments(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    """The assessments `may_grade` holds for."""
    if role == "admin":
        return true()
    if role == "instructor":
        return Assessment.section_id.in_(instructed_sections(user_id, role))
    if role == "lab_staff":
        return and_(
            Assessment.section_id.in_(lab_staffed_sections(user_id, role)),
            Assessment.kind == "lab",
        )
    return false()


def _gradable_assessment_ids(user_id: uuid.UUID, role: str) -> Select[Any]:
    return select(Assessment.id).where(gradable_assessments(user_id, role))


# --- What each account may read, table by table ---------------------------------------------------
# Staff read what they grade and the sections they staff; a student reads their own rows of the
# sections they take (a course dropped takes its assessments, marks, attendance and lab reports
# out of reach together); an administrator reads everything.


def may_read_assessment(user: _Account, assessment: Assessment) -> bool:
    if user.role == "student":
        return takes(user, assessment.section)
    return may_grade(user, assessment)


def readable_assessments(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    if role == "student":
        return Assessment.section_id.in_(taken_sections(user_id))
    return gradable_assessments(user_id, role)


def may_read_mark(user: _Account, mark: Mark) -> bool:
    """Who may see a student's mark."""
    if user.role == "student":
        return owns(user, mark) and takes(user, mark.assessment.section)
    return may_grade(user, mark.assessment)


def readable_marks(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    if role == "admin":
        return true()
    if role == "student":
        return and_(Mark.student_id == user_id, Mark.assessment_id.in_(_taken_assessments(user_id)))
    return among(Mark.assessment_id, _gradable_assessment_ids(user_id, role))


def may_read_section_row(user: _Account, section: Section) -> bool:
    """A row that belongs to a section as a whole (a lab session, the grades' finalisation)."""
    if user.role == "student":
        return takes(user, section)
    return user.role == "admin" or staffs(user, section)


def readable_section_ids(user_id: uuid.UUID, role: str) -> Select[Any]:
    """The sections whose rows `may_read_section_row` reaches."""
    if role == "admin":
        return select(Section.id)
    if role == "student":
        return taken_sections(user_id)
    return staffed_sections(user_id, role)


def may_read_registration(user: _Account, registration: Registration) -> bool:
    if user.role == "student":
        return owns(user, registration)
    return user.role == "admin" or staffs(user, registration.section)


def readable_registrations(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    if role == "admin":
        return true()
    if role == "student":
        return Registration.student_id == user_id
    return among(Registration.section_id, staffed_sections(user_id, role))


def may_read_attendance(user: _Account, record: AttendanceRecord) -> bool:
    if user.role == "student":
        return owns(user, record) and takes(user, record.lab_session.section)
    return user.role == "admin" or staffs(user, record.lab_session.section)


def readable_attendance(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    if role == "admin":
        return true()
    if role == "student":
        return and_(
            AttendanceRecord.student_id == user_id,
            AttendanceRecord.lab_session_id.in_(_taken_lab_sessions(user_id)),
        )
    return among(
        AttendanceRecord.lab_session_id,
        select(LabSession.id).where(LabSession.section_id.in_(staffed_sections(user_id, role))),
    )


def may_read_submission(user: _Account, submission: Submission) -> bool:
    if user.role == "student":
        return owns(user, submission) and takes(user, submission.assessment.section)
    return may_grade(user, submission.assessment)


def readable_submissions(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    if role == "admin":
        return true()
    if role == "student":
        return and_(
            Submission.student_id == user_id,
            Submission.assessment_id.in_(_taken_assessments(user_id)),
        )
    return among(Submission.assessment_id, _gradable_assessment_ids(user_id, role))


def readable_lab_sessions(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    return LabSession.section_id.in_(readable_section_ids(user_id, role))


def readable_finalisations(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    return GradeFinalisation.section_id.in_(readable_section_ids(user_id, role))


def may_read_account(user: _Account, account: User, staff_ids: set[uuid.UUID]) -> bool:
    """Accounts: one's own, every section's staff (`staff_ids`: `section_staff_ids()`), and
    for staff the students registered in their sections (whatever the registration's status)."""
    if user.role == "admin" or account.id == user.id or account.id in staff_ids:
        return True
    if user.role == "student":
        return False
    return any(staffs(user, registration.section) for registration in account.registrations)


def readable_accounts(user_id: uuid.UUID, role: str) -> ColumnElement[bool]:
    if role == "admin":
        return true()
    if role == "student":
        return or_(User.id == user_id, among(User.id, section_staff_ids()))
    return or_(
        User.id == user_id,
        among(User.id, section_staff_ids()),
        among(
            User.id,
            select(Registration.student_id).where(
                among(Registration.section_id, staffed_sections(user_id, role))
            ),
        ),
    )
