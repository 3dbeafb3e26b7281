"""The audit trail: one function writes an entry; the admin's log page reads them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from portal.models import (
    Assessment,
    AuditEntry,
    Course,
    LabSession,
    Record,
    Registration,
    Section,
    Term,
    User,
)


def _plain(value: Any) -> Any:
    """Make a value JSON-safe (UUIDs, dates) so before/after can be stored as they were."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def record(
    db: Session,
    actor: User | None,
    action: str,
    *,
    entity_type: str = "",
    entity_id: object = "",
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditEntry:
    """Add an audit entry to the current transaction (it commits with the change it describes)."""
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else "",
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id else "",
        summary=summary,
        before=_plain(before) if before is not None else None,
        after=_plain(after) if after is not None else None,
        reason=reason,
    )
    db.add(entry)
    return entry


R = TypeVar("R", bound=Record)


def add_and_record(
    db: Session,
    row: R,
    *,
    actor: User | None,
    entity_type: str,
    summary: Callable[[R], str],
    after: dict[str, Any],
) -> R:
    """Add a new row and audit its creation (`<entity_type>.create`) in the same transaction."""
    db.add(row)
    db.flush()
    record(
        db,
        actor,
        f"{entity_type}.create",
        entity_type=entity_type,
        entity_id=row.id,
        summary=summary(row),
        after=after,
    )
    return row


class Tombstoned(Protocol):
    """A row deleted by a tombstone (`deleted_at`), never by a DELETE (see SoftDeletable)."""

    id: Any
    deleted_at: datetime | None


def tombstone_and_record(
    db: Session,
    row: Tombstoned,
    deleted_at: datetime | None,
    *,
    actor: User | None,
    action: str,
    entity_type: str,
    summary: str,
) -> None:
    """Lay a tombstone on `row` (`deleted_at`: the moment) or lift it (None: restored), and
    audit `deleted_at` before and after as `action` in the same transaction."""
    before = {"deleted_at": row.deleted_at}
    row.deleted_at = deleted_at
    db.flush()
    record(
        db,
        actor,
        action,
        entity_type=entity_type,
        entity_id=row.id,
        summary=summary,
        before=before,
        after={"deleted_at": deleted_at},
    )


def snapshot(row: object, fields: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in fields}


def record_changes(
    db: Session,
    row: Record,
    before: dict[str, Any],
    *,
    actor: User | None,
    entity_type: str,
    summary: Callable[[dict[str, Any]], str],
    action: str = "",
) -> dict[str, Any]:
    """Audit only the fields of `before` whose value on `row` changed; returns the new values
    of those (empty: nothing changed, nothing recorded). `action`: `<entity_type>.update`."""
    after = snapshot(row, before)
    new = {name: after[name] for name in after if before.get(name) != after[name]}
    if new:
        record(
            db,
            actor,
            action or f"{entity_type}.update",
            entity_type=entity_type,
            entity_id=row.id,
            summary=summary(new),
            before={name: before.get(name) for name in new},
            after=new,
        )
    return new


def apply_and_record(
    db: Session,
    row: Record,
    values: dict[str, Any],
    fields: Iterable[str],
    *,
    actor: User | None,
    entity_type: str,
    summary: Callable[[dict[str, Any]], str],
    action: str = "",
) -> dict[str, Any]:
    """Set the cleaned values on `row`, then audit only the `fields` that really changed."""
    before = snapshot(row, fields)
    for name, value in values.items():
        setattr(row, name, value)
    db.flush()
    return record_changes(
        db, row, before, actor=actor, entity_type=entity_type, summary=summary, action=action
    )


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor: str = ""
    entity_type: str = ""
    since: datetime | None = None
    until: datetime | None = None


def search_query(filters: AuditFilter) -> Select[AuditEntry]:
    query = select(AuditEntry)
    if filters.action:
        query = query.where(AuditEntry.action.startswith(filters.action))
    if filters.actor:
        query = query.where(AuditEntry.actor_name == filters.actor.strip().lower())
    if filters.entity_type:
        query = query.where(AuditEntry.entity_type == filters.entity_type)
    if filters.since:
        query = query.where(AuditEntry.created_at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.created_at < filters.until)
    return query.order_by(AuditEntry.created_at.desc())


def known_actions(db: Session) -> list[str]:
    """Every action that has been recorded, for the log page's filter."""
    return list(db.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def known_entity_types(db: Session) -> list[str]:
    return list(
        db.scalars(
            select(AuditEntry.entity_type)
            .where(AuditEntry.entity_type != "")
            .distinct()
            .order_by(AuditEntry.entity_type)
        )
    )


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


def changes(entry: AuditEntry) -> list[Change]:
    """Before and after side by side, one line per field named in either."""
    before, after = entry.before or {}, entry.after or {}
    names = list(before) + [name for name in after if name not in before]
    return [Change(name, before.get(name), after.get(name)) for name in names]


def _uuids(value: Any) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= _uuids(item)
    elif isinstance(value, list):
        for item in value:
            found |= _uuids(item)
    elif isinstance(value, str) and len(value) == 36:
        with contextlib.suppress(ValueError):
            found.add(uuid.UUID(value))
    return found


def names_for(db: Session, entries: Iterable[AuditEntry]) -> dict[str, str]:
    """What a person calls each record an entry refers to by id (its actor, its record, ids in
    before/after): "Full Name (username)", a section's label, a course's code... One query per
    kind of record, whatever the number of entries; an id not found stays as it is."""
    ids: set[uuid.UUID] = set()
    for entry in entries:
        if entry.actor_id:
            ids.add(entry.actor_id)
        ids |= _uuids(entry.entity_id) | _uuids(entry.before) | _uuids(entry.after)
    if not ids:
        return {}
    names: dict[str, str] = {}
    for user in db.scalars(select(User).where(User.id.in_(ids))):
        names[str(user.id)] = f"{user.full_name} ({user.username})"
    for section_id, code, number, term in db.execute(
        select(Section.id, Course.code, Section.number, Term.code)
        .join(Course, Section.course_id == Course.id)
        .join(Term, Section.term_id == Term.id)
        .where(Section.id.in_(ids))
    ):
        names[str(section_id)] = f"{code}-{number} ({term})"
    for course_id, code, title in db.execute(
        select(Course.id, Course.code, Course.title).where(Course.id.in_(ids))
    ):
        names[str(course_id)] = f"{code} {title}"
    for term_id, code in db.execute(select(Term.id, Term.code).where(Term.id.in_(ids))):
        names[str(term_id)] = f"term {code}"
    for assessment_id, name in db.execute(
        select(Assessment.id, Assessment.name).where(Assessment.id.in_(ids))
    ):
        names[str(assessment_id)] = name
    for session in db.scalars(select(LabSession).where(LabSession.id.in_(ids))):
        names[str(session.id)] = f"lab session {session.label}"
    for registration_id, full_name, username, code, number, term in db.execute(
        select(
            Registration.id, User.full_name, User.username, Course.code, Section.number, Term.code
        )
        .join(User, Registration.student_id == User.id)
        .join(Section, Registration.section_id == Section.id)
        .join(Course, Section.course_id == Course.id)
        .join(Term, Section.term_id == Term.id)
        .where(Registration.id.in_(ids))
    ):
        names[str(registration_id)] = (
            f"registration of {full_name} ({username}) in {code}-{number} ({term})"
        )
    return names
