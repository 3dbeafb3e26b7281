"""What a device pulls: its scope's rows changed since its cursor, or a snapshot, page by page."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
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
)
from sqlalchemy.orm import Session, aliased

from portal.errors import ValidationError
from portal.models import (
    ChangeLogEntry,
    Device,
    DeviceAccount,
    UTCDateTime,
)
from portal.sync import scopes
from portal.sync.protocol import MOST_PENDING, NO_ACTIVE_ACCOUNT, PROTOCOL_VERSION
from portal.sync.server.enrolment import DeviceRefused, device_accounts
from portal.sync.tables import BY_NAME, SYNCED_TABLES, TABLE_INDEX

PAGE_ROWS = 2000
SNAPSHOT_PAGE_ROWS = 20000  # the default of the setting sync_snapshot_page_rows


class UnknownCursor(ValidationError):
    """A pull names a change-log number this server never issued (beyond its newest change:
    the server's database was restored from a backup, or the request was made up). The
    problem's `type` says so, and a device answers it by starting again from a snapshot."""

    problem_type = "urn:campus-portal:sync:unknown-cursor"


class NoActiveAccount(DeviceRefused):
    """Every account of the device was deactivated (or removed) on the server: nothing is left
    to pull. The problem names them (`deactivated`), so that the device stops signing them in
    offline, although it can no longer sync."""

    problem_type = NO_ACTIVE_ACCOUNT

    def __init__(self, accounts: Iterable[uuid.UUID]) -> None:
        super().__init__(_("No active account is left on this device."))
        self.problem_members = {"deactivated": sorted(str(account) for account in accounts)}


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
            raise ValidationError(_("A pull request must be an object."))

        def whole(name: str, default: int | None) -> int | None:
            value = raw.get(name, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(_("%(name)s must be a whole number.", name=name))
            return value

        after = str(raw.get("after") or "")
        if after:
            try:
                uuid.UUID(after)
            except ValueError:
                raise ValidationError(_("after must be a row id.")) from None
        table = whole("table", 0) or 0
        if table > len(SYNCED_TABLES):
            raise ValidationError(_("table is out of range."))
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
        raise NoActiveAccount(
            db.scalars(select(DeviceAccount.user_id).where(DeviceAccount.device_id == device.id))
        )
    newest = db.scalar(select(func.max(ChangeLogEntry.seq))) or 0
    claimed = max(request.cursor, request.upto or 0)
    if claimed > newest:
        raise UnknownCursor(
            _(
                "This server never issued change number %(claimed)s (its newest is %(newest)s): "
                "the device's copy does not match the server's data (was the server restored "
                "from a backup?). The device starts again with a complete copy; its unsent "
                "changes are kept.",
                claimed=claimed,
                newest=newest,
            )
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
            raise ValidationError(_("upto is below the cursor."))
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
