"""A device's pushed changes, checked and applied one by one as their author (see apply.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.errors import Busy, PortalError, ValidationError
from portal.models import (
    ChangeLogEntry,
    Device,
    ProcessedChange,
    SyncConflict,
    User,
)
from portal.sync import capture, hlc, scopes
from portal.sync.protocol import MOST_PENDING
from portal.sync.server import apply
from portal.sync.server.enrolment import device_accounts
from portal.sync.tables import BY_NAME

PUSH_BATCH = 500


@dataclass(frozen=True)
class PushResult:
    change_id: str
    status: str
    detail: str = ""

    def as_json(self) -> dict[str, str]:
        return {"change_id": self.change_id, "status": self.status, "detail": self.detail}


def push(
    db: Session,
    device: Device,
    changes: list[Any],
    *,
    now: datetime,
    upload_dir: Path,
    max_upload_bytes: int,
    pending: int | None = None,
) -> list[PushResult]:
    """Apply a device's changes in order, each in its own transaction, each at most once.

    The device's row is locked for the whole of each change, so two copies of the same batch
    arriving together are applied one after the other: the second finds the first's answer."""
    if len(changes) > PUSH_BATCH:
        raise ValidationError(_("At most %(push_batch)s changes per push.", push_batch=PUSH_BATCH))
    device_id = device.id
    results = []
    for raw in changes:
        results.append(
            _push_one(db, device_id, raw, now=now, upload_dir=upload_dir, limit=max_upload_bytes)
        )
    if pending is not None:
        db.execute(
            update(Device)
            .where(Device.id == device_id)
            .values(pending_changes=min(max(int(pending), 0), MOST_PENDING), last_seen_at=now)
        )
        db.commit()
    return results


def _push_one(
    db: Session, device_id: uuid.UUID, raw: Any, *, now: datetime, upload_dir: Path, limit: int
) -> PushResult:
    try:
        change = apply.Change.parse(raw)
    except ValueError as exc:
        return _refuse_malformed(db, device_id, raw, f"Malformed change: {exc}", now=now)
    db.execute(select(Device.id).where(Device.id == device_id).with_for_update())
    done = db.get(ProcessedChange, (device_id, change.change_id))
    if done is not None:
        db.rollback()
        return PushResult(str(change.change_id), done.status, done.detail)
    # The change log is written at commit, with the edit's clock and device (not the moment
    # the server applied it).
    with capture.authored_by(
        db, change.actor_id, stamp=hlc.believable(change.hlc, now), device_id=device_id
    ):
        outcome = _apply_as_author(
            db, device_id, change, now=now, upload_dir=upload_dir, limit=limit
        )
        if outcome.status == apply.WAITING:  # not an answer yet: the device sends it again
            db.rollback()
            return PushResult(str(change.change_id), outcome.status, outcome.detail)
        db.add(
            ProcessedChange(
                device_id=device_id,
                change_id=change.change_id,
                status=outcome.status,
                detail=outcome.detail,
                processed_at=now,
            )
        )
        try:
            db.commit()
        except IntegrityError:  # the same change committed at the same moment by a twin request
            db.rollback()
            done = db.get(ProcessedChange, (device_id, change.change_id))
            if done is None:
                raise
            return PushResult(str(change.change_id), done.status, done.detail)
    return PushResult(str(change.change_id), outcome.status, outcome.detail)


def _refuse_malformed(
    db: Session, device_id: uuid.UUID, raw: Any, detail: str, *, now: datetime
) -> PushResult:
    """A change that cannot be read is refused like any other: answered once (a replay gets the
    same answer), its values kept in a refusal that its author sees, and the device's copy of
    the row corrected when the change names one. Only a change without a readable change id
    (no device's outbox writes one) is answered without a record: nothing could key it."""
    readable: dict[str, Any] = raw if isinstance(raw, dict) else {}

    def read_uuid(name: str) -> uuid.UUID | None:
        try:
            return uuid.UUID(str(readable[name])) if readable.get(name) else None
        except ValueError:
            return None

    change_id = read_uuid("change_id")
    if change_id is None:
        return PushResult(str(readable.get("change_id", "")), apply.REFUSED, detail)
    db.execute(select(Device.id).where(Device.id == device_id).with_for_update())
    done = db.get(ProcessedChange, (device_id, change_id))
    if done is not None:
        db.rollback()
        return PushResult(str(change_id), done.status, done.detail)
    device = db.get(Device, device_id)
    assert device is not None
    actor_id, row_id = read_uuid("actor_id"), read_uuid("row_id")
    own = {account_id for account_id, _role in device_accounts(db, device)}
    table = str(readable.get("table", ""))[:64]
    fields = readable.get("fields")
    db.add(
        SyncConflict(
            kind="refused",
            table_name=table,
            row_id=row_id or uuid.UUID(int=0),  # the nil UUID: the change names no row
            kept_value=None,
            lost_value=fields if isinstance(fields, dict) else readable,
            detail=detail,
            author_id=actor_id if actor_id in own else None,
            device_id=device_id,
            change_id=change_id,
            created_at=now,
            updated_at=now,
        )
    )
    if table in BY_NAME and row_id is not None:
        values = fields if isinstance(fields, dict) else {}
        named = apply.Change(change_id, table, row_id, "", values, "", 0, actor_id)
        _correct_device(db, device_id, named)
    db.add(
        ProcessedChange(
            device_id=device_id,
            change_id=change_id,
            status=apply.REFUSED,
            detail=detail,
            processed_at=now,
        )
    )
    try:
        db.commit()
    except IntegrityError:  # answered at the same moment by a twin request: the same answer
        db.rollback()
    return PushResult(str(change_id), apply.REFUSED, detail)


def _apply_as_author(
    db: Session,
    device_id: uuid.UUID,
    change: apply.Change,
    *,
    now: datetime,
    upload_dir: Path,
    limit: int,
) -> apply.Outcome:
    accounts = device_accounts(db, device_id)  # by id: the device's row is not read again
    actor = db.get(User, change.actor_id) if change.actor_id else None
    own_account = actor is not None and (actor.id, actor.role) in accounts
    if actor is None or not own_account:
        outcome = apply.Outcome(
            apply.REFUSED, _("The change was not made by an account of this device.")
        )
    elif not _target_visible(db, change, accounts):
        outcome = apply.Outcome(apply.REFUSED, _("That record is not yours to change."))
    else:
        context = apply.Context(db, device_id, actor, change, now, upload_dir, limit)
        try:
            with db.begin_nested():
                outcome = apply.apply_change(context)
        except Busy:
            raise  # not a refusal: the whole push is answered 503 and sent again later
        except PortalError as error:
            outcome = apply.Outcome(apply.REFUSED, str(error))
    if outcome.status == apply.REFUSED and not outcome.conflicts:
        outcome.conflicts.append(("refused", "", None, change.fields))
    for kind, field_name, kept, lost in outcome.conflicts:
        db.add(
            SyncConflict(
                kind=kind,
                table_name=change.table,
                row_id=outcome.server_row_id or change.row_id,
                field=field_name,
                kept_value=kept,
                lost_value=lost,
                detail=outcome.detail,
                # Only an account of the device: a forged author must not put entries on
                # someone else's "My sync conflicts" (the device is still named).
                author_id=actor.id if actor is not None and own_account else None,
                device_id=device_id,
                change_id=change.change_id,
                created_at=now,
                updated_at=now,
            )
        )
    if outcome.status in (apply.REFUSED, apply.SUPERSEDED):
        _correct_device(db, device_id, change)
    db.flush()
    return outcome


def _target_visible(
    db: Session, change: apply.Change, accounts: list[tuple[uuid.UUID, str]]
) -> bool:
    """A change names a row by id: it must be one the device may hold (or not exist yet on
    the server, when the device's insert of it was handled under another id). An "insert"
    naming an existing row is checked as well: its fields cannot vouch for a row of others."""
    model: Any = BY_NAME[change.table].model
    if db.get(model, change.row_id) is None:
        return True
    return scopes.in_scope(db, change.table, change.row_id, accounts)


def _correct_device(db: Session, device_id: uuid.UUID, change: apply.Change) -> None:
    """After a refusal, send the device the server's version of the row on its next pull
    (or tell it to remove a row the server never accepted)."""
    model: Any = BY_NAME[change.table].model
    exists = db.get(model, change.row_id) is not None
    capture.lock_change_log(db)
    db.add(
        ChangeLogEntry(
            table_name=change.table,
            row_id=change.row_id,
            op="upsert" if exists else "discard",
            device_id=device_id,
        )
    )
    for table, row_id in _changed_alongside(db, change):
        db.add(ChangeLogEntry(table_name=table, row_id=row_id, op="upsert", device_id=device_id))


def _changed_alongside(db: Session, change: apply.Change) -> list[tuple[str, uuid.UUID]]:
    """Rows the device's own rule changed together with the refused change, in fields the
    server keeps, as the table declares them (SyncedTable.alongside): the seat counters of a
    registration's section, the final grades written by a finalisation. They are sent again
    too, or the device would keep its own counts."""
    rows: list[tuple[str, uuid.UUID]] = []
    for along in BY_NAME[change.table].alongside:
        try:
            value = uuid.UUID(str(change.fields.get(along.field)))
        except ValueError:
            continue
        if along.column == "id":
            rows.append((along.table, value))
            continue
        model: Any = BY_NAME[along.table].model
        ids = db.scalars(select(model.id).where(getattr(model, along.column) == value))
        rows.extend((along.table, row_id) for row_id in ids)
    return rows
