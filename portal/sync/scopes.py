"""What a device may hold: one rule per role and table, read by the pull, the push
authorisation and the tests alike.

A rule takes the account's id and returns the SQL condition on that table's rows that the
account may read. A device holds the union over its accounts. The catalogue (terms, courses,
sections, meetings, prerequisites, grade scales) is open to every role; everything personal is
narrowed by the relations of portal/auth/access.py, the same ones the pages and the API check:
a student's laptop holds its own registrations, marks, attendance and submissions, and no
other account's password hash (the pull blanks it: `_blank_verifiers` in server/pull.py).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, false, not_, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.util import find_tables

from portal.auth import access
from portal.models import ROLES, Assessment, Registration, Submission, SyncConflict

Rule = Callable[[uuid.UUID], ColumnElement[bool]]


def _everything(_user_id: uuid.UUID) -> ColumnElement[bool]:
    return true()


CATALOGUE: dict[str, Rule] = {
    "terms": _everything,
    "courses": _everything,
    "prerequisites": _everything,
    "sections": _everything,
    "meetings": _everything,
    "grade_scales": _everything,
}


def _personal(role: str) -> dict[str, Rule]:
    """A role's rules for the personal tables: the relations of portal/auth/access.py (a
    student's own rows of the sections they take, what staff grade and staff)."""
    return {
        **CATALOGUE,
        "users": lambda u: access.readable_accounts(u, role),
        "registrations": lambda u: access.readable_registrations(u, role),
        "assessments": lambda u: access.readable_assessments(u, role),
        "marks": lambda u: access.readable_marks(u, role),
        "grade_finalisations": lambda u: access.readable_finalisations(u, role),
        "lab_sessions": lambda u: access.readable_lab_sessions(u, role),
        "attendance_records": lambda u: access.readable_attendance(u, role),
        "stored_files": lambda u: _file_of(access.readable_submissions(u, role)),
        "submissions": lambda u: access.readable_submissions(u, role),
        "sync_conflicts": lambda u: SyncConflict.author_id == u,
    }


STUDENT = _personal("student")
INSTRUCTOR = _personal("instructor")
LAB_STAFF = _personal("lab_staff")

ADMIN: dict[str, Rule] = dict.fromkeys(STUDENT, _everything)

RULES: dict[str, dict[str, Rule]] = {
    "student": STUDENT,
    "instructor": INSTRUCTOR,
    "lab_staff": LAB_STAFF,
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


# --- The scope fingerprint ----------------------------------------------------------------------
# A change pull sends the rows that changed. A row can also enter or leave an account's scope
# while it stays as it is, when something its rule reads elsewhere changes: the fingerprint is a
# digest of those things, and a device whose fingerprint changed takes a snapshot. Its inputs
# are queries of the relations in portal/auth/access.py; tests/sync/test_scopes.py checks that
# they read every column the rules read in other tables (besides ids and `WRITTEN_ONCE`).


@dataclass(frozen=True)
class ScopeInput:
    """One input of the fingerprint for one account: a query whose answer decides which rows
    the account's rules reach (its rows are digested as text, in the query's order)."""

    query: Callable[[uuid.UUID, str], Select[*tuple[Any, ...]]]  # of any columns
    # Added after devices held fingerprints without it: left out when it answers nothing, so
    # that a scope it does not concern keeps the fingerprint it had.
    only_when_found: bool = False


def _taken(user_id: uuid.UUID, _role: str) -> Select[Any]:
    return access.taken_sections(user_id).order_by(Registration.section_id)


def _hidden_assessments(user_id: uuid.UUID, role: str) -> Select[Any]:
    """The assessments of the account's sections that its rule hides (lab staff read the labs
    only): one whose kind changes enters or leaves the scope with its marks and lab reports,
    although no row of theirs changed."""
    return (
        select(Assessment.id)
        .where(
            or_(
                Assessment.section_id.in_(access.staffed_sections(user_id, role)),
                Assessment.section_id.in_(access.taken_sections(user_id)),
            ),
            not_(RULES[role]["assessments"](user_id)),
        )
        .order_by(Assessment.id)
    )


# Every non-admin scope holds the accounts of the sections' staff: someone who stops being
# staff anywhere leaves it (someone new arrives with the section that names them).
SHARED_INPUT = access.section_staff_ids

ACCOUNT_INPUTS: tuple[ScopeInput, ...] = (
    ScopeInput(access.staffing),  # the sections it teaches or runs the labs of
    ScopeInput(_taken),  # the sections it takes
    ScopeInput(_hidden_assessments, only_when_found=True),
)


def _as_text(rows: Sequence[Row[Any]]) -> list[Any]:
    """An input's answer as the digest reads it: one column as its values, more as tuples."""
    return [str(row[0]) if len(row) == 1 else tuple(map(str, row)) for row in rows]


def fingerprint(db: Session, accounts: list[tuple[uuid.UUID, str]]) -> str:
    """Changes whenever what the accounts may read changes shape (a section assigned or
    reassigned, a course taken or dropped, an account joining, an assessment of the lab staff's
    sections made a lab or no longer one): the device then takes a full snapshot of its scope
    and removes what left it."""
    digest = hashlib.sha256()
    if any(role != "admin" for _user_id, role in accounts):
        staff = sorted(str(user_id) for user_id in db.scalars(SHARED_INPUT()))
        digest.update(repr(staff).encode())
    for user_id, role in sorted(accounts, key=lambda account: str(account[0])):
        digest.update(f"{user_id}:{role};".encode())
        if role == "admin":
            continue
        for part in ACCOUNT_INPUTS:
            answer = _as_text(db.execute(part.query(user_id, role)).all())
            if answer or not part.only_when_found:
                digest.update(repr(answer).encode())
    return digest.hexdigest()
