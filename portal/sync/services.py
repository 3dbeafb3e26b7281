"""The central server's side of sync: enrolment, device credentials, push, pull, files,
revocation and conflict review. Plain functions over a session (see PROTOCOL.md)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Date,
    String,
    Time,
    Uuid,
    any_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from portal.errors import Busy, Forbidden, NotFound, PortalError, ValidationError
from portal.models import (
    ChangeLogEntry,
    Device,
    DeviceAccount,
    EnrolmentCode,
    ProcessedChange,
    StoredFile,
    SyncConflict,
    User,
    UTCDateTime,
)
from portal.sync import apply, capture, hlc, scopes
from portal.sync.tables import BY_NAME, SYNCED_TABLES, TABLE_INDEX

PROTOCOL_VERSION = 2
SUPPORTED_PROTOCOLS = frozenset({1, 2})
PAGE_ROWS = 2000
SNAPSHOT_PAGE_ROWS = 20000  # the default of the setting sync_snapshot_page_rows
PUSH_BATCH = 500
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over the phone


class DeviceRefused(PortalError):
    """The device may not call the server (unknown credential, revoked)."""

    status_code = 403


class ProtocolRefused(PortalError):
    status_code = 426


class UnknownCursor(ValidationError):
    """A pull names a change-log number this server never issued (beyond its newest change:
    the server's database was restored from a backup, or the request was made up). The
    problem's `type` says so, and a device answers it by starting again from a snapshot."""

    problem_type = "urn:campus-portal:sync:unknown-cursor"


MOST_PENDING = 2**31 - 1  # what a device reports waiting is kept in an integer column


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_protocol(version: Any) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise ProtocolRefused("The request does not say which sync protocol it speaks.") from None
    if number not in SUPPORTED_PROTOCOLS:
        newest = max(SUPPORTED_PROTOCOLS)
        if number > newest:
            raise ProtocolRefused(
                f"This copy of Campus Portal speaks sync protocol {number}, newer than the "
                f"campus server's ({newest}). Ask IT to update the server; your changes are "
                "kept on this computer meanwhile."
            )
        raise ProtocolRefused(
            f"This copy of Campus Portal is too old for the campus server (protocol {number}; "
            f"the server speaks {', '.join(map(str, sorted(SUPPORTED_PROTOCOLS)))}). Install the "
            "current version; your changes are kept on this computer and sync after the update."
        )
    return number


# --- Enrolment ------------------------------------------------------------------------------


def create_enrolment_code(
    db: Session, user: User, *, created_by: User | None, now: datetime, valid_days: int = 7
) -> str:
    """A new single-use code for enrolling one device for `user`; only its hash is kept."""
    if not user.is_active:
        raise ValidationError(f"{user.username} is deactivated: no device can be enrolled.")
    if not 1 <= valid_days <= 90:
        raise ValidationError("A code is valid for 1 to 90 days.")
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    db.add(
        EnrolmentCode(
            code_hash=_digest(normalise_code(code)),
            user_id=user.id,
            created_by_id=created_by.id if created_by else None,
            expires_at=now + timedelta(days=valid_days),
        )
    )
    db.flush()
    return code


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


@dataclass(frozen=True)
class Enrolment:
    device: Device
    token: str
    user: User


def enrol_device(
    db: Session, code: str, *, name: str, app_version: str, now: datetime, os_name: str = ""
) -> Enrolment:
    """Use a code (once) to create a device credential for the code's account. `name` is the
    one the copy chose (an administrator can change it); `os_name` its operating system."""
    digest = _digest(normalise_code(code))
    found = db.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == digest))
    if found is None:
        raise ValidationError("That enrolment code is not known. Check it, or ask for a new one.")
    if found.used_at is not None:
        raise ValidationError("That enrolment code was already used. Ask for a new one.")
    if found.expires_at <= now:
        raise ValidationError("That enrolment code has expired. Ask for a new one.")
    user = db.get(User, found.user_id)
    if user is None or not user.is_active:
        raise ValidationError("The account of that code is deactivated.")
    token = secrets.token_urlsafe(32)
    device = Device(
        name=name.strip()[:200] or "device",
        credential_hash=_digest(token),
        first_user_id=user.id,
        app_version=app_version[:40],
        os_name=os_name.strip()[:100],
        last_seen_at=now,
    )
    db.add(device)
    db.flush()
    # The code is taken by a conditional UPDATE: two devices racing for it cannot both win.
    taken = db.execute(
        update(EnrolmentCode)
        .where(EnrolmentCode.id == found.id, EnrolmentCode.used_at.is_(None))
        .values(used_at=now, device_id=device.id)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ValidationError("That enrolment code was already used. Ask for a new one.")
    db.add(DeviceAccount(device_id=device.id, user_id=user.id, added_at=now))
    db.flush()
    return Enrolment(device, token, user)


def enrol_again(
    db: Session, code: str, credential: str, new_credential: str, *, app_version: str, now: datetime
) -> Enrolment:
    """A revoked device comes back with a new code: the same device (its accounts, its cursor,
    the changes it already pushed) under a new credential that it chose (`new_credential`,
    derived from its old one and the code). Its waiting changes then go through push as any
    others, each re-checked as its author.

    The code must be for one of the device's accounts. A retry whose first answer was lost
    (the device still holds its old credential; the server already took the new one) gets the
    same answer again."""
    if len(new_credential) < 32 or len(new_credential) > 200:
        raise ValidationError("The new device credential must be 32 to 200 characters.")
    digest = _digest(normalise_code(code))
    found = db.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == digest))
    if found is None:
        raise ValidationError("That enrolment code is not known. Check it, or ask for a new one.")
    device = db.scalar(select(Device).where(Device.credential_hash == _digest(credential)))
    if device is None:
        again = db.scalar(select(Device).where(Device.credential_hash == _digest(new_credential)))
        user = db.get(User, found.user_id)
        if again is not None and found.device_id == again.id and user is not None:
            return Enrolment(again, new_credential, user)  # the first answer was lost
        raise ValidationError(
            "This computer is not known to the campus server: connect a new data folder "
            "(--data-dir) instead."
        )
    if device.revoked_at is None:
        raise ValidationError(
            "This computer is still connected to the campus server (it was not revoked): "
            "there is nothing to enrol again; sync it instead (campus-portal sync)."
        )
    if found.used_at is not None:
        raise ValidationError("That enrolment code was already used. Ask for a new one.")
    if found.expires_at <= now:
        raise ValidationError("That enrolment code has expired. Ask for a new one.")
    user = db.get(User, found.user_id)
    if user is None or not user.is_active:
        raise ValidationError("The account of that code is deactivated.")
    if db.get(DeviceAccount, (device.id, user.id)) is None:
        raise ValidationError(
            f"That code is for {user.username}, who has not used this computer: ask for a code "
            "for one of the accounts of this computer."
        )
    taken = db.execute(
        update(EnrolmentCode)
        .where(EnrolmentCode.id == found.id, EnrolmentCode.used_at.is_(None))
        .values(used_at=now, device_id=device.id)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ValidationError("That enrolment code was already used. Ask for a new one.")
    from portal.audit.services import record

    revoked_at = device.revoked_at
    device.credential_hash = _digest(new_credential)
    device.revoked_at = None
    device.revoked_by_id = None
    device.app_version = app_version[:40] or device.app_version
    device.last_seen_at = now
    record(
        db,
        user,
        "sync.device_enrolled_again",
        entity_type="device",
        entity_id=device.id,
        summary=(
            f"Enrolled device {device.name} again for {user.username} (revoked "
            f"{revoked_at:%Y-%m-%d %H:%M} UTC)"
        ),
    )
    db.flush()
    return Enrolment(device, new_credential, user)


def authenticate_device(db: Session, token: str, *, now: datetime, seen: bool = True) -> Device:
    """The device signing with `token`; raises DeviceRefused (unknown or revoked). `seen`:
    its last contact is now (False for a call that only reads, such as a file download)."""
    device = db.scalar(select(Device).where(Device.credential_hash == _digest(token or "")))
    if device is None:
        raise DeviceRefused("This device is not enrolled with the campus server.")
    if device.revoked_at is not None:
        raise DeviceRefused(
            "This device was revoked by an administrator and can no longer sync. Its unsent "
            "changes are kept on it: with a new enrolment code from an administrator it can "
            "be enrolled again and send them (campus-portal enrol), or they can be exported "
            "(campus-portal sync --export FILE)."
        )
    if seen:
        device.last_seen_at = now
    return device


def device_accounts(db: Session, device: Device | uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """(id, role) of the device's accounts that are still active."""
    device_id = device if isinstance(device, uuid.UUID) else device.id
    rows = db.execute(
        select(User.id, User.role)
        .join(DeviceAccount, DeviceAccount.user_id == User.id)
        .where(
            DeviceAccount.device_id == device_id, User.active.is_(True), User.deleted_at.is_(None)
        )
        .order_by(User.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def add_account(
    db: Session,
    device: Device,
    username: str,
    password: str,
    *,
    now: datetime,
    settings: dict[str, Any] | None = None,
) -> User:
    """A person signs in on the device for the first time (online): their account joins it.
    With the server's `settings`, a campus account's password is checked by the directory."""
    from portal.accounts.services import authenticate

    user = authenticate(db, username, password, now=now)
    if user is None and settings is not None and "ldap" in settings["SIGN_IN_METHODS"]:
        from portal.accounts.directory import sign_in_with_password  # ldap3: server only

        user = sign_in_with_password(db, settings, username, password, now=now)
    if user is None:
        raise Forbidden("Wrong username or password.")
    first = db.get(User, device.first_user_id)
    if user.id == device.first_user_id:
        return user
    if user.role == "student":
        raise Forbidden(
            "A student's account can only be used on a device enrolled for that student."
        )
    if first is not None and first.role == "student":
        raise Forbidden("This device was enrolled for a student: other accounts cannot join it.")
    exists = db.get(DeviceAccount, (device.id, user.id))
    if exists is None:
        db.add(DeviceAccount(device_id=device.id, user_id=user.id, added_at=now))
        db.flush()
    return user


def revoke_device(db: Session, device: Device, *, actor: User, now: datetime) -> None:
    from portal.audit.services import record

    if device.revoked_at is not None:
        raise ValidationError("That device is already revoked.")
    device.revoked_at = now
    device.revoked_by_id = actor.id
    record(
        db,
        actor,
        "sync.device_revoked",
        entity_type="device",
        entity_id=device.id,
        summary=f"Revoked device {device.name}",
    )


# --- Push -----------------------------------------------------------------------------------


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
        raise ValidationError(f"At most {PUSH_BATCH} changes per push.")
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
    # the server applied it): they stay in the session's info until then.
    try:
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
    finally:
        db.info.pop(capture.STAMP, None)
        db.info.pop(capture.DEVICE_ID, None)
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
    db.info[capture.ACTOR] = change.actor_id
    db.info[capture.STAMP] = hlc.believable(change.hlc, now)
    db.info[capture.DEVICE_ID] = device_id
    own_account = actor is not None and (actor.id, actor.role) in accounts
    if actor is None or not own_account:
        outcome = apply.Outcome(
            apply.REFUSED, "The change was not made by an account of this device."
        )
    elif not _target_visible(db, change, accounts):
        outcome = apply.Outcome(apply.REFUSED, "That record is not yours to change.")
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
    server keeps: the seat counters of a registration's section, the final grades written by
    a finalisation. They are sent again too, or the device would keep its own counts."""
    from portal.models import Registration

    try:
        section_id = uuid.UUID(str(change.fields.get("section_id")))
    except ValueError:
        return []
    if change.table == "registrations":
        return [("sections", section_id)]
    if change.table == "grade_finalisations":
        ids = db.scalars(select(Registration.id).where(Registration.section_id == section_id))
        return [("registrations", row_id) for row_id in ids]
    return []


# --- Pull -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequest:
    cursor: int
    fingerprint: str
    upto: int | None
    table: int
    after: str
    snapshot: bool
    limit: int | None
    pending: int | None = None  # changes waiting on the device, as it reports them
    accounts: str = ""  # `next.accounts` of the page before: the accounts the pull began with

    @classmethod
    def parse(cls, raw: Any) -> PullRequest:
        if not isinstance(raw, dict):
            raise ValidationError("A pull request must be an object.")

        def whole(name: str, default: int | None) -> int | None:
            value = raw.get(name, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"{name} must be a whole number.")
            return value

        after = str(raw.get("after") or "")
        if after:
            try:
                uuid.UUID(after)
            except ValueError:
                raise ValidationError("after must be a row id.") from None
        table = whole("table", 0) or 0
        if table > len(SYNCED_TABLES):
            raise ValidationError("table is out of range.")
        return cls(
            cursor=whole("cursor", 0) or 0,
            fingerprint=str(raw.get("fingerprint") or ""),
            upto=whole("upto", None),
            table=table,
            after=after,
            snapshot=bool(raw.get("snapshot", False)),
            limit=whole("limit", None) or None,
            pending=whole("pending", None),
            accounts=str(raw.get("accounts") or "")[:64],
        )


def pull(
    db: Session,
    device: Device,
    request: PullRequest,
    *,
    now: datetime,
    protocol: int = PROTOCOL_VERSION,
    snapshot_rows: int = SNAPSHOT_PAGE_ROWS,
) -> dict[str, Any]:
    """One page of what changed in the device's scope since its cursor.

    A pull is fixed to an upper bound `upto` (the newest change-log number when it began) and
    walks the tables parent-first; the device stores `cursor = upto` with the last page. When
    the scope changed shape (fingerprint) it is a snapshot: everything in scope is sent, and
    the device removes what it holds outside it.

    Rows are read as tuples of column values (no ORM objects): protocol 2 sends them so, with
    one column list per table (`columns`); protocol 1 as one object per row."""
    with db.no_autoflush:  # the device's last-seen time is written once, with the commit
        return _pull(db, device, request, now=now, protocol=protocol, snapshot_rows=snapshot_rows)


def _pull(
    db: Session,
    device: Device,
    request: PullRequest,
    *,
    now: datetime,
    protocol: int,
    snapshot_rows: int,
) -> dict[str, Any]:
    accounts = device_accounts(db, device)
    if not accounts:
        raise DeviceRefused("No active account is left on this device.")
    newest = db.scalar(select(func.max(ChangeLogEntry.seq))) or 0
    claimed = max(request.cursor, request.upto or 0)
    if claimed > newest:
        raise UnknownCursor(
            f"This server never issued change number {claimed} (its newest is {newest}): the "
            "device's copy does not match the server's data (was the server restored from a "
            "backup?). The device starts again with a complete copy; its unsent changes are kept."
        )
    if request.upto is None:
        fingerprint = scopes.fingerprint(db, accounts)
        snapshot = request.cursor == 0 or fingerprint != request.fingerprint
        upto = newest
        table_index, after = 0, ""
    else:
        fingerprint, snapshot, upto = request.fingerprint, request.snapshot, request.upto
        table_index, after = request.table, request.after
        if upto < request.cursor:
            raise ValidationError("upto is below the cursor.")
    since = 0 if snapshot else request.cursor
    discards: list[dict[str, str]] = []
    touched = None
    if not snapshot:
        # What changed since the cursor, in one statement: the discards (first page only) and
        # the tables with upserts (a change pull looks only at those; most do not change).
        changed = (
            select(ChangeLogEntry.table_name, literal(None, Uuid).label("row_id"))
            .where(
                ChangeLogEntry.op == "upsert",
                ChangeLogEntry.seq > since,
                ChangeLogEntry.seq <= upto,
                _mine(device),
            )
            .distinct()
        )
        statement: Any = changed
        if table_index == 0 and not after:
            statement = union_all(
                changed,
                select(ChangeLogEntry.table_name, ChangeLogEntry.row_id).where(
                    ChangeLogEntry.op == "discard",
                    ChangeLogEntry.seq > since,
                    ChangeLogEntry.seq <= upto,
                    _mine(device),
                ),
            )
        touched = set()
        discarded: list[tuple[str, uuid.UUID]] = []
        for table, row_id in db.execute(statement):
            if row_id is None:
                touched.add(table)
            else:
                discarded.append((table, row_id))
        discards = [{"table": table, "id": str(row_id)} for table, row_id in discarded]
    # The accounts a snapshot's users table sent need not go again with later pages (a lab
    # course names the same few hundred students in its registrations, marks and attendance)
    # when the device's accounts are those the pull began with.
    users_sent = (
        snapshot
        and table_index > TABLE_INDEX["users"]
        and request.accounts == _accounts_digest(accounts)
    )
    page, table_index, after, complete = _walk(
        db, device, accounts, table_index, after, since, upto, touched,
        snapshot=snapshot, limit=request.limit, snapshot_rows=snapshot_rows,
        users_sent=users_sent,
    )  # fmt: skip
    if request.pending is not None:
        device.pending_changes = min(request.pending, MOST_PENDING)
    if complete:
        device.last_sync_at = now
    db.commit()
    answer: dict[str, Any] = {
        "protocol": protocol,
        "upto": upto,
        "snapshot": snapshot,
        "fingerprint": fingerprint,
        "complete": complete,
        "next": None
        if complete
        else {"table": table_index, "after": after, "accounts": _accounts_digest(accounts)},
        "discards": discards,
    }
    if protocol >= 2:
        answer["columns"] = {table: COLUMN_NAMES[table] for table in page}
        answer["rows"] = page
    else:
        answer["rows"] = {
            table: [dict(zip(COLUMN_NAMES[table], row, strict=True)) for row in rows]
            for table, rows in page.items()
        }
    return answer


def _walk(
    db: Session,
    device: Device,
    accounts: list[tuple[uuid.UUID, str]],
    table_index: int,
    after: str,
    since: int,
    upto: int,
    touched: set[str] | None,
    *,
    snapshot: bool,
    limit: int | None,
    snapshot_rows: int,
    users_sent: bool = False,
) -> tuple[dict[str, list[Any]], int, str, bool]:
    """One page's rows: the tables walked from `table_index` (after the row id `after`), with
    the accounts they name; and where the next page starts, and whether this is the last.
    `users_sent`: a later page of a snapshot whose users table went with earlier pages, for
    the same accounts."""
    page: dict[str, list[Any]] = {}
    # A snapshot moves the whole scope: in fewer, larger pages (setting sync_snapshot_page_rows).
    most = snapshot_rows if snapshot else PAGE_ROWS
    budget = min(limit or most, most)
    complete = True
    while table_index < len(SYNCED_TABLES):
        entry = SYNCED_TABLES[table_index]
        rows = (
            _changed_rows(
                db, device, entry.name, accounts, since, upto, after, budget + 1, snapshot=snapshot
            )
            if touched is None or entry.name in touched
            else []
        )
        if len(rows) > budget:
            rows = rows[:budget]
            after = str(rows[-1][ID_POSITION[entry.name]])
            complete = False
        if rows:
            page.setdefault(entry.name, []).extend(_blank_verifiers(entry.name, rows, accounts))
            budget -= len(rows)
        if not complete:
            break
        table_index, after = table_index + 1, ""
        if budget <= 0 and table_index < len(SYNCED_TABLES):
            complete = False
            break
    # A snapshot walks the users table first. When the device reads every account, the ones
    # that existed by `upto` are in this page or went with an earlier one: rows name others
    # only when newer. (A narrower scope may have grown since the users table was walked.)
    # The same holds for a narrower scope when nothing it is read from changed since `upto`
    # (looked at after the rows were read: the scope they were read in is the one the users
    # table was walked in).
    everyone = snapshot and scopes.reads_everything("users", accounts)
    if users_sent and not everyone:
        everyone = not _scope_changed_since(db, device, "users", accounts, upto)
    _add_referenced_users(db, device, page, accounts, sent_by=upto if everyone else None)
    return page, table_index, after, complete


def _accounts_digest(accounts: list[tuple[uuid.UUID, str]]) -> str:
    text = ";".join(f"{user_id}:{role}" for user_id, role in accounts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _scope_changed_since(
    db: Session, device: Device, table: str, accounts: list[tuple[uuid.UUID, str]], seq: int
) -> bool:
    """Whether a table that `table`'s scope rule reads (other than `table`) has a change-log
    entry above `seq`."""
    read = scopes.tables_read(table, frozenset(role for _user_id, role in accounts))
    if not read:
        return False
    return (
        db.scalar(
            select(ChangeLogEntry.seq)
            .where(
                ChangeLogEntry.seq > seq,
                ChangeLogEntry.table_name.in_(sorted(read)),
                _mine(device),
            )
            .limit(1)
        )
        is not None
    )


COLUMN_NAMES: dict[str, list[str]] = {
    entry.name: list(entry.table.columns.keys()) for entry in SYNCED_TABLES
}
ID_POSITION: dict[str, int] = {name: names.index("id") for name, names in COLUMN_NAMES.items()}


def _mine(device: Device) -> Any:
    """Change-log entries for every device, or for this one (corrections after a refusal)."""
    return or_(ChangeLogEntry.device_id.is_(None), ChangeLogEntry.device_id == device.id)


# ISO 8601 of a UTC moment as Python's isoformat writes it, but always with microseconds.
_PG_UTC_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'


def _wire_columns(table: str, dialect: str) -> list[Any]:
    """The columns of `table` as a pull reads them. On PostgreSQL, ids, dates and times are
    read as the text they travel as (ISO 8601; UTC moments with "+00:00"), written by the
    database rather than parsed into Python objects and formatted again for each row."""
    columns = list(BY_NAME[table].table.columns)
    if dialect != "postgresql":
        return columns
    out: list[Any] = []
    for column in columns:
        kind = column.type
        if isinstance(kind, UTCDateTime):
            out.append(type_coerce(func.to_char(column, _PG_UTC_TEXT), String).label(column.name))
        elif isinstance(kind, Uuid | Date | Time):
            out.append(cast(column, String).label(column.name))
        else:
            out.append(column)
    return out


def _changed_rows(
    db: Session,
    device: Device,
    table: str,
    accounts: list[tuple[uuid.UUID, str]],
    since: int,
    upto: int,
    after: str,
    limit: int,
    *,
    snapshot: bool = False,
) -> list[Any]:
    """The rows of `table` to send, as tuples in the order of COLUMN_NAMES, by id."""
    columns = BY_NAME[table].table.c
    logged = select(ChangeLogEntry.row_id).where(
        ChangeLogEntry.table_name == table,
        ChangeLogEntry.op == "upsert",
        ChangeLogEntry.seq > since,
        _mine(device),
    )
    query = select(*_wire_columns(table, db.get_bind().dialect.name))
    if snapshot:
        # A snapshot sends every row that existed by its bound, as it is now: the device
        # removes what a snapshot did not send, and a row of its scope edited during a long
        # snapshot must not be one. Every row is logged when it is made (rows loaded in bulk
        # too: capture.backfill), so the rows that did not exist by the bound are those whose
        # first entry lies above it: found among the few entries above the bound (read by
        # number), rather than by one probe of the log for each row sent.
        earlier = aliased(ChangeLogEntry)
        born_later = logged.where(
            ChangeLogEntry.seq > upto,
            ~select(earlier.seq)
            .where(
                earlier.table_name == table,
                earlier.row_id == ChangeLogEntry.row_id,
                earlier.op == "upsert",
                earlier.seq <= upto,
                or_(earlier.device_id.is_(None), earlier.device_id == device.id),
            )
            .exists(),
        )
        query = query.where(columns.id.not_in(born_later))
    else:
        # A change pull sends rows whose latest change lies in (cursor, upto]; a row changed
        # after its bound is left to the next pull.
        latest = (
            logged.group_by(ChangeLogEntry.row_id)
            .having(func.max(ChangeLogEntry.seq) <= upto)
            .subquery()
        )
        query = query.join(latest, latest.c.row_id == columns.id)
    query = query.where(scopes.condition(table, accounts)).order_by(columns.id).limit(limit)
    if after:
        query = query.where(columns.id > uuid.UUID(after))
    return _tuples(db, table, query)


def _tuples(db: Session, table: str, query: Any) -> list[Any]:
    """The rows of a query over `_wire_columns(table)` as tuples, on the session's connection
    (Core rows, without the ORM's handling of each one). When no column needs converting as
    it is read (PostgreSQL: ids, dates and times come as text), the driver's rows are taken
    as they are, all at once, rather than one SQLAlchemy row at a time."""
    result = db.connection().execute(query)
    if _raw_rows(table, db.get_bind().dialect, result.cursor.description):
        return list(result.cursor.fetchall())
    return [tuple(row) for row in result]


_RAW_ROWS: dict[tuple[str, str], bool] = {}


def _raw_rows(table: str, dialect: Any, description: Any) -> bool:
    """Whether SQLAlchemy would convert none of these columns as it reads them (decided as it
    decides, by the column's type and the type the driver reports)."""
    key = (table, dialect.name)
    raw = _RAW_ROWS.get(key)
    if raw is None:
        raw = _RAW_ROWS[key] = all(
            column.type.dialect_impl(dialect).result_processor(dialect, spec[1]) is None
            for column, spec in zip(_wire_columns(table, dialect.name), description, strict=True)
        )
    return raw


PASSWORD_POSITION = COLUMN_NAMES["users"].index("password_hash")


def _blank_verifiers(
    table: str, rows: list[Any], accounts: list[tuple[uuid.UUID, str]]
) -> list[Any]:
    """No password verifier for accounts not on this device."""
    if table != "users":
        return rows
    own = {str(account_id) for account_id, _role in accounts}
    out = []
    for row in rows:
        if str(row[ID_POSITION["users"]]) not in own:
            row = list(row)
            row[PASSWORD_POSITION] = "!"
        out.append(row)
    return out


USER_REFERENCES: dict[str, tuple[int, ...]] = {
    entry.name: tuple(
        index
        for index, column in enumerate(entry.table.columns)
        for key in column.foreign_keys
        if key.column.table.name == "users"
    )
    for entry in SYNCED_TABLES
}


def _add_referenced_users(
    db: Session,
    device: Device,
    page: dict[str, list[Any]],
    accounts: list[tuple[uuid.UUID, str]],
    *,
    sent_by: int | None = None,
) -> None:
    """Rows sent may name accounts the device has never received (a student new to a section,
    an administrator who entered a mark): send those in scope with the page, and blank the
    references to accounts the device may not hold (who entered a mark, for a student).

    `sent_by`: in a snapshot of a device that reads every account, the accounts logged by
    then went with the users table and are not sent again."""
    named: set[str] = set()  # ids as text: read as text on PostgreSQL, as UUIDs elsewhere
    for table, rows in page.items():
        for position in USER_REFERENCES.get(table, ()):
            named.update(str(row[position]) for row in rows if row[position] is not None)
    if not named:
        return
    users = BY_NAME["users"].table.c
    sent = {str(row[ID_POSITION["users"]]) for row in page.get("users", [])}
    dialect = db.get_bind().dialect.name
    if scopes.reads_everything("users", accounts) or named <= sent:
        # Every account (a reference names one that exists), or only accounts this page's
        # users rows send, which its users rule chose (the staff a page of sections names).
        visible = named
    else:
        visible = {
            str(user_id)
            for user_id in db.scalars(
                select(users.id).where(
                    _among(users.id, named, dialect), scopes.condition("users", accounts)
                )
            )
        }
    if sent_by is None:
        extra = visible - sent
    else:
        # The accounts logged after the bound (few: those made while the snapshot runs) are
        # the only ones the users table may not have sent.
        logged = select(ChangeLogEntry.row_id).where(
            ChangeLogEntry.table_name == "users", ChangeLogEntry.op == "upsert", _mine(device)
        )
        newer = {str(row_id) for row_id in db.scalars(logged.where(ChangeLogEntry.seq > sent_by))}
        extra = (visible & newer) - sent
        if extra:
            older = db.scalars(
                logged.where(
                    ChangeLogEntry.seq <= sent_by, _among(ChangeLogEntry.row_id, extra, dialect)
                )
            )
            extra -= {str(row_id) for row_id in older}
    if extra:
        rows = _tuples(
            db,
            "users",
            select(*_wire_columns("users", dialect))
            .where(_among(users.id, extra, dialect))
            .order_by(users.id),
        )
        page.setdefault("users", []).extend(_blank_verifiers("users", rows, accounts))
    for table, rows in page.items():
        columns = list(BY_NAME[table].table.columns)
        for position in USER_REFERENCES.get(table, ()):
            if not columns[position].nullable:
                continue
            for index, row in enumerate(rows):
                if row[position] is not None and str(row[position]) not in visible:
                    row = list(row)
                    row[position] = None
                    rows[index] = row


def _among(column: Any, ids: Iterable[str], dialect: str) -> Any:
    """`column IN ids`; on PostgreSQL one array parameter (`= ANY(...)`), however many ids
    (thousands of parameters make a statement slow to prepare)."""
    values = [uuid.UUID(text) for text in ids]
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # the server only (a device starts faster)

        return column == any_(bindparam("ids", values, type_=postgresql.ARRAY(Uuid), unique=True))
    return column.in_(values)


# --- Files ----------------------------------------------------------------------------------


def file_visible(db: Session, device: Device, sha256: str) -> bool:
    accounts = device_accounts(db, device)
    return (
        db.scalar(
            select(StoredFile.id).where(
                StoredFile.sha256 == sha256, scopes.condition("stored_files", accounts)
            )
        )
        is not None
    )


def partial_path(upload_dir: Path, device_id: uuid.UUID, sha256: str) -> Path:
    return upload_dir / "incoming" / str(device_id) / f"{sha256}.part"


def receive_chunk(
    upload_dir: Path,
    device_id: uuid.UUID,
    sha256: str,
    offset: int,
    data: bytes,
    *,
    max_bytes: int,
) -> dict[str, Any]:
    """Append one chunk of a file at `offset` (resumable); when `data` is the last chunk the
    caller says so by the file reaching its announced size. Returns the received size and
    whether the whole file is stored."""
    from portal.submissions import storage

    if not _is_sha256(sha256):
        raise ValidationError("A file is named by its sha256 (64 hexadecimal digits).")
    if storage.blob_path(upload_dir, sha256).is_file():
        return {"received": None, "complete": True}
    part = partial_path(upload_dir, device_id, sha256)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if offset != have:
        return {"received": have, "complete": False, "detail": f"expected offset {have}"}
    if have + len(data) > max_bytes:
        part.unlink(missing_ok=True)
        raise ValidationError("The file is larger than the largest accepted upload.")
    with part.open("ab") as handle:
        handle.write(data)
    return {"received": have + len(data), "complete": False}


def finish_file(upload_dir: Path, device_id: uuid.UUID, sha256: str) -> bool:
    """Check the received file against its name; store it when the hash matches. A file that
    does not match is removed (it will be sent again from the start)."""
    from portal.submissions import storage

    if storage.blob_path(upload_dir, sha256).is_file():
        return True
    part = partial_path(upload_dir, device_id, sha256)
    if not part.exists():
        return False
    digest = hashlib.sha256()
    with part.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        part.unlink()
        raise ValidationError("The file received does not match its sha256; send it again.")
    target = storage.blob_path(upload_dir, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    part.replace(target)
    return True


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


# --- Review ---------------------------------------------------------------------------------


def devices(db: Session) -> list[tuple[Device, int, int]]:
    """Every device with its open conflicts and its number of accounts, newest first."""
    conflicts = (
        select(func.count(SyncConflict.id))
        .where(SyncConflict.device_id == Device.id, SyncConflict.resolved_at.is_(None))
        .scalar_subquery()
    )
    accounts = select(func.count()).where(DeviceAccount.device_id == Device.id).scalar_subquery()
    return [
        (row[0], row[1], row[2])
        for row in db.execute(
            select(Device, conflicts, accounts).order_by(Device.created_at.desc())
        )
    ]


@dataclass(frozen=True)
class DeviceRow:
    """A line of the Devices page."""

    device: Device
    usernames: list[str]
    open_conflicts: int
    enrolled_for: str  # the person the enrolment code was for: "Sam Student (stud1)"


def device_overview(db: Session) -> list[DeviceRow]:
    """Every device with the person it was enrolled for, the usernames of its accounts and its
    open conflicts, newest first (three queries, whatever the number of devices)."""
    rows = devices(db)
    accounts: dict[uuid.UUID, list[str]] = {}
    people: dict[uuid.UUID, str] = {}
    for device_id, user_id, username, full_name in db.execute(
        select(DeviceAccount.device_id, User.id, User.username, User.full_name)
        .join(User, User.id == DeviceAccount.user_id)
        .order_by(DeviceAccount.added_at, User.username)
    ):
        accounts.setdefault(device_id, []).append(username)
        people[user_id] = f"{full_name} ({username})"
    return [
        DeviceRow(
            device,
            accounts.get(device.id, []),
            conflicts,
            people.get(device.first_user_id, "—"),
        )
        for device, conflicts, _ in rows
    ]


def rename_device(db: Session, device: Device, name: str, *, actor: User) -> None:
    """An administrator names a device as people will recognise it ("Lab B PC 4, Sam")."""
    from portal.audit.services import record

    new_name = " ".join(name.split())
    if not new_name:
        raise ValidationError("Give the device a name.")
    if len(new_name) > 200:
        raise ValidationError("A device name has at most 200 characters.")
    old_name = device.name
    if new_name == old_name:
        return
    device.name = new_name
    record(
        db,
        actor,
        "sync.device_renamed",
        entity_type="device",
        entity_id=device.id,
        summary=f"Renamed device {old_name} to {new_name}",
        before={"name": old_name},
        after={"name": new_name},
    )


@dataclass(frozen=True)
class IssuedCode:
    code: str
    username: str
    expires_at: datetime


def issue_enrolment_code(
    db: Session, username: str, *, actor: User, now: datetime, valid_days: int = 7
) -> IssuedCode:
    """An enrolment code for the account `username`, created by an administrator (audited;
    the code itself is never stored or logged, only shown once)."""
    from portal.audit.services import record

    name = username.strip().lower()
    user = db.scalar(select(User).where(User.username == name, User.deleted_at.is_(None)))
    if user is None:
        raise ValidationError(f"There is no account with the username {name!r}.")
    code = create_enrolment_code(db, user, created_by=actor, now=now, valid_days=valid_days)
    expires_at = now + timedelta(days=valid_days)
    record(
        db,
        actor,
        "sync.enrolment_code_created",
        entity_type="user",
        entity_id=user.id,
        summary=f"Enrolment code for a device of {user.username}, valid for {valid_days} days",
        after={"username": user.username, "expires_at": expires_at.isoformat()},
    )
    return IssuedCode(code, user.username, expires_at)


def get_device(db: Session, device_id: uuid.UUID) -> Device:
    device = db.get(Device, device_id)
    if device is None:
        raise NotFound("There is no such device.")
    return device


def open_conflict_count(db: Session) -> int:
    return (
        db.scalar(select(func.count(SyncConflict.id)).where(SyncConflict.resolved_at.is_(None)))
        or 0
    )


CONFLICT_STATES = ("open", "resolved", "all")


def conflicts_query(
    *,
    author_id: uuid.UUID | None = None,
    include_resolved: bool = False,
    kind: str = "",
    table: str = "",
    state: str = "",
) -> Any:
    """Conflicts, newest first: open ones only unless `include_resolved` or `state` says
    otherwise ("open", "resolved", "all"); narrowed to one author, kind or table."""
    query = select(SyncConflict).order_by(SyncConflict.created_at.desc(), SyncConflict.id)
    if author_id is not None:
        query = query.where(SyncConflict.author_id == author_id)
    state = state or ("all" if include_resolved else "open")
    if state == "open":
        query = query.where(SyncConflict.resolved_at.is_(None))
    elif state == "resolved":
        query = query.where(SyncConflict.resolved_at.is_not(None))
    if kind:
        query = query.where(SyncConflict.kind == kind)
    if table:
        query = query.where(SyncConflict.table_name == table)
    return query


def conflict_tables(db: Session) -> list[str]:
    """The tables that have conflicts, for the page's filter."""
    return list(db.scalars(select(SyncConflict.table_name).distinct().order_by("table_name")))


def device_names(db: Session, device_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    ids = {device_id for device_id in device_ids if device_id is not None}
    if not ids:
        return {}
    rows = db.execute(select(Device.id, Device.name).where(Device.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


def server_time_ms(now: datetime) -> int:
    return hlc.millis_of(now)
