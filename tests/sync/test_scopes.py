"""The scope fingerprint follows the scope rules: every column a rule reads in another table
(what decides which rows of its own table an account reaches while those rows stay as they
are) is read by one of the fingerprint's inputs, unless it is an id or never changes once its
row is written (`access.WRITTEN_ONCE`), and a change of each on a campus changes the
fingerprint of the account it concerns. A rule that starts reading something new, without the
fingerprint following, would leave devices holding rows that left their scope, or missing
rows that entered it, until their next snapshot."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sqlalchemy import Column, select, update
from sqlalchemy.sql import visitors

from portal.auth import access
from portal.extensions import db as _db
from portal.models import ROLES, Assessment, Mark, Registration, Section, User
from portal.sync import scopes
from tests.sync.conftest import Campus

ACCOUNT = uuid.UUID(int=1)


def _columns(clause: Any) -> set[tuple[str, str]]:
    """The columns an SQL condition or query reads (ids aside), as (table, column)."""
    return {
        (element.table.name, element.name)
        for element in visitors.iterate(clause)
        if isinstance(element, Column) and not element.primary_key
    }


def _read_by_fingerprint(role: str) -> set[tuple[str, str]]:
    if role == "admin":  # an administrator's scope is everything: nothing shapes it
        return set()
    read = _columns(scopes.SHARED_INPUT())
    for part in scopes.ACCOUNT_INPUTS:
        read |= _columns(part.query(ACCOUNT, role))
    return read


def _not_followed(role: str, rules: Mapping[str, scopes.Rule]) -> list[str]:
    """What the role's rules read in other tables that the fingerprint does not."""
    followed = _read_by_fingerprint(role) | access.WRITTEN_ONCE
    return sorted(
        f"{table} reads {other}.{column}"
        for table, rule in rules.items()
        for other, column in _columns(rule(ACCOUNT))
        if other != table and (other, column) not in followed
    )


@pytest.mark.parametrize("role", ROLES)
def test_the_fingerprint_reads_every_column_the_scope_rules_read_elsewhere(role: str) -> None:
    assert not _not_followed(role, scopes.RULES[role])


def test_a_rule_that_reads_a_column_the_fingerprint_does_not_is_found() -> None:
    graded = select(Assessment.id).where(Assessment.weight > 0)
    rules = {**scopes.RULES["student"], "marks": lambda user_id: Mark.assessment_id.in_(graded)}
    assert _not_followed("student", rules) == ["marks reads assessments.weight"]


# For each column the rules turn on: a change of it on the campus, and the account whose scope
# it changes (whose fingerprint must then change).
CHANGES: dict[tuple[str, str], tuple[Callable[[Campus], uuid.UUID], Callable[[Campus], Any]]] = {
    ("registrations", "status"): (
        lambda campus: campus.students[0],
        lambda campus: (
            update(Registration)
            .where(Registration.student_id == campus.students[0])
            .values(status="dropped")
        ),
    ),
    ("sections", "instructor_id"): (
        lambda campus: campus.instructor,
        lambda campus: (
            update(Section).where(Section.id == campus.section).values(instructor_id=None)
        ),
    ),
    ("sections", "lab_staff_id"): (
        lambda campus: campus.lab_staff,
        lambda campus: (
            update(Section).where(Section.id == campus.section).values(lab_staff_id=None)
        ),
    ),
    ("assessments", "kind"): (
        lambda campus: campus.lab_staff,
        lambda campus: update(Assessment).where(Assessment.id == campus.lab).values(kind="exam"),
    ),
}


def _turned_on() -> set[tuple[str, str]]:
    """The columns the rules read in other tables that may change (ids and `WRITTEN_ONCE`
    aside)."""
    return {
        (other, column)
        for rules in scopes.RULES.values()
        for table, rule in rules.items()
        for other, column in _columns(rule(ACCOUNT))
        if other != table and (other, column) not in access.WRITTEN_ONCE
    }


def _fingerprint(db: Any, user_id: uuid.UUID) -> str:
    role = db.scalar(select(User.role).where(User.id == user_id))
    return scopes.fingerprint(db, [(user_id, str(role))])


def test_a_change_of_anything_a_rule_turns_on_changes_the_fingerprint(
    campus: Campus, server: Any
) -> None:
    """Not only read: each column the rules turn on, changed on a campus, changes the
    fingerprint of the account whose scope it changes."""
    assert set(CHANGES) == _turned_on(), "say here how each column the rules read changes"
    with server.app_context():
        db = _db.session
        # The staff teach a second section too: they stay section staff (a change the accounts'
        # shared input sees) whatever happens to the first.
        db.execute(
            update(Section)
            .where(Section.id == campus.other_section)
            .values(instructor_id=campus.instructor, lab_staff_id=campus.lab_staff)
        )
        db.commit()
        for (table, column), (whose, change) in CHANGES.items():
            account = whose(campus)
            before = _fingerprint(db, account)
            db.execute(change(campus))
            assert _fingerprint(db, account) != before, f"{table}.{column} changed"
            db.rollback()
