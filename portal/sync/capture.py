"""Every change to a synchronised row is recorded in the same transaction, in one place.

SQLAlchemy session events, so that no route, import or command can forget it:

- on the central server, each committed change adds an entry to the change log
  (`sync_changes`), numbered under one lock so that numbers follow commit order, and the
  fields it changed get their version (`sync_field_versions`) for same-field conflicts;
- on an enrolled device, each flushed change adds an entry to the outbox (`sync_outbox`).

Rows written by the sync engine itself while applying pulled data go through Core statements
on the connection, which these events do not see, so pulled rows never travel back.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, inspect, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from portal.models import ChangeLogEntry, FieldVersion, OutboxEntry, SyncState
from portal.sync import hlc
from portal.sync.tables import BOOKKEEPING_FIELDS, BY_NAME, synced
from portal.sync.wire import to_json

SERVER = "server"
DEVICE = "desktop"
# pg_advisory_xact_lock key: writers of the change log take their numbers one at a time.
CHANGE_LOG_LOCK = 0x5C_0E_C4A9

# Session.info keys
PENDING = "sync_pending"  # {(table, row_id): set of changed fields, or None for a delete}
BULK = "sync_bulk_tables"  # tables that received ORM bulk inserts
AUTHOR = "sync_author"  # the Author of the changes being made (see attribute_to, authored_by)


@dataclass(frozen=True)
class Author:
    """Who makes a session's changes: the signed-in person of a request, or, while the sync
    server applies a device's change, its author with the change's clock and device."""

    user_id: uuid.UUID | None
    stamp: str | None = None  # the clock of the change the sync server applies
    device_id: uuid.UUID | None = None  # the device whose change the sync server applies


NOBODY = Author(None)


def author_of(session: Session) -> Author:
    author = session.info.get(AUTHOR)
    return author if isinstance(author, Author) else NOBODY


def attribute_to(session: Session, user_id: uuid.UUID | None) -> None:
    """The session's changes from now on are made by `user_id` (None: by nobody). Each request
    sets it to the signed-in person (portal/__init__.py); scripts and tests set it themselves."""
    session.info[AUTHOR] = Author(user_id)


@contextmanager
def authored_by(
    session: Session,
    user_id: uuid.UUID | None,
    *,
    stamp: str | None = None,
    device_id: uuid.UUID | None = None,
) -> Iterator[Author]:
    """The changes made (and committed) inside the block are `user_id`'s, made at `stamp` on
    `device_id`: how the sync server applies a device's change. The author before comes back
    after."""
    before = session.info.get(AUTHOR)
    author = session.info[AUTHOR] = Author(user_id, stamp, device_id)
    try:
        yield author
    finally:
        if before is None:
            session.info.pop(AUTHOR, None)
        else:
            session.info[AUTHOR] = before


_modes: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
_installed = False


def register_engine(engine: Engine, mode: str) -> None:
    """Say whether `engine` is the central server's database or a device's."""
    _modes[engine] = mode


def mode_of(session: Session) -> str | None:
    try:
        bind = session.get_bind()
    except Exception:  # an unbound session: nothing to capture
        return None
    engine = bind.engine if hasattr(bind, "engine") else bind
    return _modes.get(engine)  # type: ignore[arg-type]


def install() -> None:
    """Listen on every ORM session (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    from sqlalchemy import event

    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_rollback", _forget)
    event.listen(Session, "do_orm_execute", _on_execute)


def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(BULK, None)


def _changed_fields(instance: Any) -> list[str]:
    state = inspect(instance)
    names = []
    for column in state.mapper.column_attrs:
        history = state.attrs[column.key].history
        if history.added or history.deleted:
            names.append(column.key)
    return names


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    mode = mode_of(session)
    if mode == SERVER:
        pending: dict[tuple[str, uuid.UUID], set[str] | None] = session.info.setdefault(PENDING, {})
        pushed = author_of(session).device_id is not None
        for instance in session.new:
            if (entry := synced(instance)) is not None:
                fields = pending.setdefault((entry.name, instance.id), set())
                if pushed and fields is not None:
                    # A row a device created: its fields carry that edit's clock and device,
                    # or the device's own later edit of them would count as a conflict.
                    columns = inspect(instance).mapper.column_attrs
                    fields.update(entry.pushable(column.key for column in columns))
        for instance in session.dirty:
            if (entry := synced(instance)) is not None and session.is_modified(instance):
                fields = pending.setdefault((entry.name, instance.id), set())
                if fields is not None:
                    fields.update(_changed_fields(instance))
        for instance in session.deleted:
            if (entry := synced(instance)) is not None:
                pending[(entry.name, instance.id)] = None
    elif mode == DEVICE:
        _write_outbox(session)


def _write_outbox(session: Session) -> None:
    changes: list[tuple[Any, str, list[str]]] = []
    for instance in session.new:
        if synced(instance) is not None:
            columns = [c.key for c in inspect(instance).mapper.column_attrs]
            changes.append((instance, "insert", columns))
    for instance in session.dirty:
        if synced(instance) is not None and session.is_modified(instance):
            changes.append((instance, "update", _changed_fields(instance)))
    for instance in session.deleted:
        if synced(instance) is not None:
            changes.append((instance, "delete", []))
    if not changes:
        return
    connection = session.connection()
    state = connection.execute(
        select(
            SyncState.device_id,
            SyncState.cursor,
            SyncState.last_hlc,
            SyncState.clock_offset_ms,
            SyncState.boot_id,
            SyncState.boot_offset_ms,
            SyncState.revoked,
        )
    ).first()
    if state is None:  # not enrolled: a stand-alone desktop copy keeps no outbox
        return
    now = datetime.now(UTC)
    stamp = state.last_hlc
    node = str(state.device_id)
    # The server's clock now, as this device can tell: by the boot clock since the last sync
    # when the computer has not restarted since (the wall clock may have been set since), else
    # by the wall clock and the offset measured then.
    booted = hlc.boot_clock()
    if booted is not None and state.boot_offset_ms is not None and booted[0] == state.boot_id:
        physical = booted[1] + state.boot_offset_ms
    else:
        physical = hlc.millis_of(now) + state.clock_offset_ms
    actor = author_of(session).user_id
    rows = []
    for instance, op, names in changes:
        entry = synced(instance)
        assert entry is not None
        fields = entry.pushable(names) if op != "delete" else {}
        if op == "update" and not fields:
            continue  # only server-kept fields changed (seat counters after a local drop)
        for key in entry.natural_keys:  # the server may know the row under another id
            fields.update(dict.fromkeys(key))
        values = {name: to_json(getattr(instance, name, None)) for name in fields}
        stamp = hlc.tick_at(stamp, physical, node)
        rows.append(
            {
                "change_id": uuid.uuid4(),
                "table_name": entry.name,
                "row_id": instance.id,
                "op": op,
                "fields": values,
                "hlc": stamp,
                "base_cursor": state.cursor,
                "actor_id": actor,
                "created_at": now,
            }
        )
    if rows:
        connection.execute(insert(OutboxEntry), rows)
        connection.execute(update(SyncState).values(last_hlc=stamp))


def _on_execute(state: ORMExecuteState) -> None:
    """ORM statements that bypass the unit of work: bulk inserts and bulk updates."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    entry = synced(mapper.class_) if mapper is not None else None
    if entry is None or mode_of(state.session) != SERVER:
        return
    session = state.session
    if state.is_insert:
        session.info.setdefault(BULK, set()).add(entry.name)
        return
    where = getattr(state.statement, "whereclause", None)
    model: Any = entry.model
    query = select(model.id)
    if where is not None:
        query = query.where(where)
    ids = session.execute(query, execution_options={"_sync_internal": True}).scalars().all()
    pending = session.info.setdefault(PENDING, {})
    for row_id in ids:
        if state.is_delete:
            pending[(entry.name, row_id)] = None
        else:
            pending.setdefault((entry.name, row_id), set())


def _before_commit(session: Session) -> None:
    if mode_of(session) != SERVER:
        return
    session.flush()
    pending = session.info.pop(PENDING, None)
    bulk = session.info.pop(BULK, None)
    if not pending and not bulk:
        return
    write_change_log(session, pending or {}, bulk or set())


def lock_change_log(session: Session) -> None:
    """Take the change log's numbering lock until commit (PostgreSQL; SQLite's write
    transaction, begun with BEGIN IMMEDIATE, already holds the database)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})


def write_change_log(
    session: Session,
    pending: dict[tuple[str, uuid.UUID], set[str] | None],
    bulk: set[str],
) -> None:
    lock_change_log(session)
    seq = None
    if pending:
        numbers = session.scalars(
            insert(ChangeLogEntry).returning(ChangeLogEntry.seq),
            [
                {
                    "table_name": table,
                    "row_id": row_id,
                    "op": "upsert" if fields is not None else "discard",
                    "device_id": None,
                }
                for (table, row_id), fields in pending.items()
            ],
        ).all()
        seq = max(numbers)  # the newest entry, as the field versions below record it
    for table in sorted(bulk):
        backfill(session, table)
    versions = [
        (table, row_id, name)
        for (table, row_id), fields in pending.items()
        for name in (fields or ())
        if name not in BOOKKEEPING_FIELDS
    ]
    if versions:
        author = author_of(session)
        stamp = author.stamp or hlc.tick("", datetime.now(UTC), SERVER)
        actor, device = author.user_id, author.device_id
        rows = [
            {
                "table_name": t,
                "row_id": r,
                "field": f,
                "seq": seq,
                "hlc": stamp,
                "actor_id": actor,
                "device_id": device,
            }
            for t, r, f in versions
        ]
        statement: Any
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql  # the server only (a device starts faster)

            statement = postgresql.insert(FieldVersion)
        else:
            statement = sqlite.insert(FieldVersion)
        statement = statement.on_conflict_do_update(
            index_elements=["table_name", "row_id", "field"],
            set_={
                "seq": statement.excluded.seq,
                "hlc": statement.excluded.hlc,
                "actor_id": statement.excluded.actor_id,
                "device_id": statement.excluded.device_id,
            },
        )
        session.execute(statement, rows)


def backfill(session: Session, table: str) -> int:
    """Log every row of `table` that has no change-log entry yet (rows loaded in bulk, or
    present before sync existed). Returns how many were added."""
    entry = BY_NAME[table]
    model: Any = entry.model
    logged = select(ChangeLogEntry.seq).where(
        ChangeLogEntry.table_name == table, ChangeLogEntry.row_id == model.id
    )
    before = session.scalar(select(func.count(ChangeLogEntry.seq))) or 0
    session.execute(
        insert(ChangeLogEntry).from_select(
            ["table_name", "row_id", "op"],
            select(text(f"'{table}'"), model.id, text("'upsert'")).where(~logged.exists()),
        )
    )
    return (session.scalar(select(func.count(ChangeLogEntry.seq))) or 0) - before
