"""Pulling the device's scope: pages written with Core statements, files fetched alongside."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from portal.models import OutboxEntry, SnapshotSeen, SyncState, User
from portal.sync.device import accounts
from portal.sync.device.client import Progress, Summary, SyncError, SyncStopped, Transport
from portal.sync.tables import BY_NAME, SYNCED_TABLES
from portal.sync.wire import sqlite_rows

log = logging.getLogger(__name__)

FILE_TABLES = frozenset({"stored_files", "submissions"})  # their rows name files
BIG_PAGE_ROWS = 2000  # a pulled page larger than this is written with a larger page cache
# A pull's first pages ask for at most this many rows, and each next one for as many as the pull
# has brought so far (the server caps a page at its own size): the device starts writing early
# and writes while the server reads the next page, and a large scope still travels in large
# pages (each a transaction on the device: fewer is faster).
FIRST_PAGE_ROWS = 5000
MOST_PAGE_ROWS = 1_000_000
APPLY_CACHE_KIB = 64 * 1024
DISCARDS_AT_ONCE = 500  # ids in one statement (SQLite limits a statement's parameters)


def _download_file(transport: Transport, upload_dir: Path, sha256: str) -> None:
    """Fetch a file (resuming a partial download) and keep it only if its hash checks."""
    from portal.submissions import storage

    target = storage.blob_path(upload_dir, sha256)
    if target.is_file():
        return
    part = upload_dir / "incoming" / f"{sha256}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    response = transport.call("GET", f"/files/{sha256}", headers={**transport.headers(), **headers})
    mode = "ab" if response.status_code == 206 else "wb"
    with part.open(mode) as handle:
        handle.write(response.content)
    if not storage.store_if_whole(upload_dir, part, sha256):
        raise SyncError(
            _(
                "A file from the server did not match its hash (%(file)s); it will be fetched "
                "again at the next sync.",
                file=sha256[:12],
            )
        )


class _Downloads:
    """The files of a page's stored_files rows, fetched in the background (a few at a time)
    while the page's other rows are written; `wait` returns once every one is whole and its
    hash checked, or raises the first download's error."""

    WORKERS = 4

    def __init__(self, transport: Transport, upload_dir: Path, wanted: list[str]) -> None:
        self.futures: list[Future[None]] = []
        self.pool: ThreadPoolExecutor | None = None
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return
        self.pool = ThreadPoolExecutor(
            max_workers=min(self.WORKERS, len(unique)), thread_name_prefix="sync-download"
        )
        self.futures = [
            self.pool.submit(_download_file, transport, upload_dir, sha256) for sha256 in unique
        ]

    def wait(self) -> None:
        for future in self.futures:
            future.result()

    def close(self) -> None:
        """Let the downloads under way end (a page that failed leaves no thread behind)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _Ahead:
    """The pages of a pull, asked for in a thread of their own: the next one while the current
    one is written (one page ahead: the server reads the next page while the device writes this
    one). Pages are still written one after another, in order, each with where the pull stands.
    A stop request (`stop`, set at shutdown) abandons the page under way at once: its thread is
    a daemon that ends with its request, and nothing of the page is written."""

    POLL_SECONDS = 0.05  # how soon a stop request is seen while a page travels

    def __init__(self, transport: Transport, stop: threading.Event | None = None) -> None:
        self.transport = transport
        self.stop = stop
        self.future: Future[dict[str, Any]] | None = None

    def ask(self, request: dict[str, Any]) -> None:
        future: Future[dict[str, Any]] = Future()
        future.set_running_or_notify_cancel()

        def fetch() -> None:
            try:
                future.set_result(self.transport.json("POST", "/pull", request))
            except BaseException as exc:  # noqa: BLE001 - handed to the sync's thread by take()
                future.set_exception(exc)

        threading.Thread(target=fetch, name="sync-pull", daemon=True).start()
        self.future = future

    def take(self) -> dict[str, Any]:
        """The page asked for (or the error that stopped it); SyncStopped if a stop is asked
        for while it travels."""
        assert self.future is not None
        future = self._ended()
        return future.result()

    def drop(self) -> None:
        """Forget a page still travelling, once its request has ended (the pull starts again:
        one request of this device at a time)."""
        if self.future is not None:
            self._ended()

    def _ended(self) -> Future[dict[str, Any]]:
        assert self.future is not None
        future = self.future
        while not wait([future], self.POLL_SECONDS if self.stop is not None else None).done:
            if self.stop is not None and self.stop.is_set():
                self.future = None  # abandoned: its thread ends with its request
                raise SyncStopped
        self.future = None
        return future

    def close(self) -> None:
        """The pull ended (done, failed or stopped): a page still travelling is abandoned."""
        self.future = None


def _following(request: dict[str, Any], page: dict[str, Any], pulled: int) -> dict[str, Any]:
    """The request for the page after `page`: what the device would send once `page` is
    written (where the pull stands is written with it: apply_page); `pulled` rows came so far."""
    following = page.get("next") or {}
    return {
        "cursor": request["cursor"],
        "pending": request["pending"],
        "limit": min(max(FIRST_PAGE_ROWS, pulled), MOST_PAGE_ROWS),
        "upto": int(page["upto"]),
        "table": int(following.get("table", 0)),
        "after": str(following.get("after", "")),
        "accounts": str(following.get("accounts", "")),
        "snapshot": bool(page.get("snapshot")),
        "fingerprint": str(page.get("fingerprint", "")),
    }


def pull(
    engine: Engine,
    transport: Transport,
    upload_dir: Path,
    summary: Summary,
    progress: Progress | None,
    stop: threading.Event | None = None,
) -> None:
    for attempt in range(2):
        ahead = _Ahead(transport, stop)
        try:
            with engine.connect() as connection:  # the pages are written through this one
                try:
                    _pull_pages(engine, connection, transport, upload_dir, summary, progress, ahead)
                finally:
                    _restore_cache(connection)
            return
        except SyncError as error:
            if error.reason != "cursor":
                raise
            if attempt:
                raise SyncError(str(error), reason="refused") from None
            log.warning("sync: %s", error)
            _start_again(engine)
        finally:
            ahead.close()


def _start_again(engine: Engine) -> None:
    """The server never issued this device's cursor (its database went back to a backup): pull
    everything in scope again, as a snapshot, after which what the server no longer holds is
    removed here (rows with changes still waiting to be pushed are kept, and pushed)."""
    with engine.begin() as connection:
        connection.execute(
            update(SyncState).values(
                cursor=0,
                scope_fingerprint="",
                pull_upto=None,
                pull_table=0,
                pull_after="",
                pull_snapshot=False,
                pull_fingerprint="",
                pull_fresh=False,
            )
        )
        connection.execute(delete(SnapshotSeen))


def _pull_pages(
    engine: Engine,
    connection: Connection,
    transport: Transport,
    upload_dir: Path,
    summary: Summary,
    progress: Progress | None,
    ahead: _Ahead,
) -> None:
    restarts = 0
    page: dict[str, Any] | None = None  # fetched ahead, for `request`
    while True:
        if page is None:
            with engine.connect() as reading:  # where sync stands and what waits, in one look
                state = reading.execute(
                    select(SyncState, select(func.count(OutboxEntry.seq)).scalar_subquery())
                ).first()
            if state is None:
                raise SyncError(
                    _("This computer is not connected to a campus server."), reason="local"
                )
            request: dict[str, Any] = {
                "cursor": state.cursor,
                "fingerprint": state.scope_fingerprint,
                "pending": int(state[-1] or 0),
                "limit": FIRST_PAGE_ROWS,
            }
            if state.pull_upto is not None:
                request.update(
                    upto=state.pull_upto,
                    table=state.pull_table,
                    after=state.pull_after,
                    snapshot=state.pull_snapshot,
                    fingerprint=state.pull_fingerprint,
                )
            resumed_snapshot = bool(state.pull_snapshot)
            received = 0
            ahead.ask(request)
            page = ahead.take()
        received += sum(len(rows) for rows in page.get("rows", {}).values())
        following = _following(request, page, received)
        if not page.get("complete"):
            ahead.ask(following)
        wanted: list[str] = []
        for names, rows in _travelling(page, "stored_files"):
            position = names.index("sha256") if "sha256" in names else None
            wanted.extend(str(row[position] if position is not None else "") for row in rows)
        summary.files += len(wanted)
        downloads = _Downloads(transport, upload_dir, wanted)
        try:
            count = apply_page(connection, page, files=downloads.wait)
        except IntegrityError:
            # A row referred to a parent that changed while this pull was running: start the
            # pull again from the stored cursor (what was applied stays; it is all newer).
            ahead.drop()
            restarts += 1
            if restarts > 3:
                raise SyncError(
                    _("The campus server is busy; sync will try again."), reason="busy"
                ) from None
            with engine.begin() as writing:
                # An abandoned snapshot left rows its scope may no longer hold: the pull that
                # starts again is a snapshot too (no fingerprint matches an empty one), so
                # that what it does not send is removed.
                restart: dict[str, Any] = {"pull_upto": None, "pull_table": 0, "pull_after": ""}
                if resumed_snapshot or page.get("snapshot"):
                    restart["scope_fingerprint"] = ""
                writing.execute(update(SyncState).values(**restart, pull_fresh=False))
                # The rows an abandoned snapshot saw are not the next snapshot's: left behind,
                # they would keep rows that left the scope from being removed.
                writing.execute(delete(SnapshotSeen))
            page = None
            continue
        finally:
            downloads.close()
        summary.pulled += count
        if progress:
            table = int((page.get("next") or {}).get("table", len(SYNCED_TABLES)))
            progress("pull", table, len(SYNCED_TABLES))
        if page.get("complete"):
            return
        request, page = following, ahead.take()


def _travelling(page: dict[str, Any], table: str) -> list[tuple[list[str], list[Any]]]:
    """The rows of `table` in a pulled page as (column names, rows of values): protocol 2 sends
    arrays with one column list per table; protocol 1 one object per row."""
    rows = page.get("rows", {}).get(table)
    if not rows:
        return []
    columns = page.get("columns")
    if isinstance(columns, dict):
        names = columns.get(table)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise SyncError(
                _("The server sent rows of %(table)s without their columns.", table=table)
            )
        return [(names, rows)]
    shapes: dict[tuple[str, ...], list[Any]] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise SyncError(_("The server sent a bad row of %(table)s.", table=table))
        shapes.setdefault(tuple(row), []).append(list(row.values()))
    return [(list(names), values) for names, values in shapes.items()]


def apply_page(
    connection: Connection, page: dict[str, Any], *, files: Callable[[], None] | None = None
) -> int:
    """Write one pulled page, its progress and (last page) the cursor in one transaction (on
    `connection`, outside any transaction of its own).

    `files` returns once the files of the page's stored_files rows are whole and checked (or
    raises): it is called before the rows of the tables that name files are written, so the
    rows before them are written while the files travel.

    A snapshot that begins on a device holding no synchronised row at all (its first sync)
    is *fresh*: no local row can be the same thing under another id, and nothing can lie
    outside the scope when it completes, so its rows are written without the natural-key
    clean-up and without noting each row for the clean-up (the flag is kept with the pull's
    progress, so a resumed pull stays fresh and a restarted one checks again)."""
    rows_by_table: dict[str, Any] = page.get("rows", {})
    unknown = set(rows_by_table) - set(BY_NAME)
    if unknown:
        raise SyncError(
            _(
                "The server sent rows of unknown tables: %(tables)s.",
                tables=", ".join(sorted(unknown)),
            )
        )
    snapshot = bool(page.get("snapshot"))
    count = 0
    with _released_on_failure(connection), connection.begin():
        connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        if sum(len(rows) for rows in rows_by_table.values()) > BIG_PAGE_ROWS:
            _enlarge_cache(connection)
        fresh = snapshot and _fresh(connection)
        _discard(connection, page.get("discards", []))
        for entry in SYNCED_TABLES:
            if entry.name in FILE_TABLES and files is not None:
                files()  # a row that names a file only once the file is whole
                files = None
            for names, raw_rows in _travelling(page, entry.name):
                try:
                    convert = _parameters(entry.name, tuple(names), connection.dialect)
                    values = convert(raw_rows)
                except (TypeError, ValueError) as exc:
                    raise SyncError(_("The server sent a bad row: %(exc)s", exc=exc)) from None
                _upsert(connection, entry.name, names, values, fresh=fresh)
                if snapshot and not fresh:
                    position = names.index("id")
                    connection.exec_driver_sql(
                        "INSERT OR IGNORE INTO sync_snapshot_seen (table_name, row_id) "
                        "VALUES (?, ?)",
                        [(entry.name, row[position]) for row in values],
                    )
                count += len(values)
        if page.get("complete"):
            if snapshot and not fresh:
                _prune(connection)
            _write_state(
                connection,
                {
                    "cursor": int(page["upto"]),
                    "scope_fingerprint": str(page.get("fingerprint", "")),
                    "pull_upto": None,
                    "pull_table": 0,
                    "pull_after": "",
                    "pull_snapshot": False,
                    "pull_fingerprint": "",
                    "pull_fresh": False,
                },
            )
        else:
            following = page.get("next") or {}
            _write_state(
                connection,
                {
                    "pull_upto": int(page["upto"]),
                    "pull_table": int(following.get("table", 0)),
                    "pull_after": str(following.get("after", "")),
                    "pull_snapshot": snapshot,
                    "pull_fingerprint": str(page.get("fingerprint", "")),
                    "pull_fresh": fresh,
                },
            )
    return count


def _discard(connection: Connection, discards: list[dict[str, Any]]) -> None:
    """Remove the rows the server no longer holds (or never accepted), children first, so
    that an account is removed only when no row of this device names it any more (else it is
    kept deactivated, as after a snapshot)."""
    by_table: dict[str, list[uuid.UUID]] = {}
    for item in discards:
        name = str(item.get("table"))
        if name in BY_NAME:
            try:
                by_table.setdefault(name, []).append(uuid.UUID(str(item.get("id"))))
            except ValueError:
                raise SyncError(
                    _("The server sent a bad row id to remove: %(item)s", item=repr(item))
                ) from None
    for entry in reversed(SYNCED_TABLES):
        ids = by_table.get(entry.name, [])
        for start in range(0, len(ids), DISCARDS_AT_ONCE):
            chosen = entry.table.c.id.in_(ids[start : start + DISCARDS_AT_ONCE])
            if entry.model is User:
                accounts.remove(connection, chosen)
            else:
                connection.execute(delete(entry.table).where(chosen))


@contextlib.contextmanager
def _released_on_failure(connection: Connection) -> Iterator[None]:
    """Roll back what a failed page left open. A COMMIT that SQLite refuses (a deferred
    foreign key) leaves its transaction open, holding the database's write lock: every other
    connection would find the database locked."""
    try:
        yield
    except BaseException:
        if not connection.closed and not connection.invalidated:
            driver = connection.connection.driver_connection
            if driver is not None and getattr(driver, "in_transaction", False):
                driver.rollback()
        raise


_CACHE_TO_RESTORE = "sync_cache_to_restore"


def _enlarge_cache(connection: Connection) -> None:
    """Rows land at random places of the tables' indexes (ids are random): a page cache that
    holds them makes a large page several times faster. It stays for the pull's later pages
    (shrunk in between, it would be emptied and read again); `_restore_cache` gives the
    connection its own size back once the pull ends (the connection returns to the pool)."""
    if _CACHE_TO_RESTORE not in connection.info:
        connection.info[_CACHE_TO_RESTORE] = connection.exec_driver_sql(
            "PRAGMA cache_size"
        ).scalar()
        connection.exec_driver_sql(f"PRAGMA cache_size={-APPLY_CACHE_KIB}")


def _restore_cache(connection: Connection) -> None:
    if _CACHE_TO_RESTORE in connection.info:
        cache = connection.info.pop(_CACHE_TO_RESTORE)
        restored = int(cache) if cache is not None else -2000  # SQLite's default
        connection.exec_driver_sql(f"PRAGMA cache_size={restored}")
        connection.commit()  # the statement began a transaction (SQLAlchemy's autobegin)


# Whether a device holds any synchronised row (or a snapshot's notes), and the pull's progress
# written with each page: plain SQL, so that a device's first sync compiles no statement for
# them (SQLite only, as apply_page is).
_HELD = [*(entry.name for entry in SYNCED_TABLES), SnapshotSeen.__tablename__]
_EXISTS = [f'EXISTS (SELECT 1 FROM "{name}")' for name in _HELD]  # noqa: S608 - our names
_HOLDS_ANY = "SELECT " + " OR ".join(_EXISTS)
_PULL_STATE = f'SELECT pull_upto, pull_fresh FROM "{SyncState.__tablename__}"'  # noqa: S608


def _fresh(connection: Connection) -> bool:
    """Whether the snapshot this page belongs to began on a device that held nothing."""
    state = connection.exec_driver_sql(_PULL_STATE).first()
    if state is not None and state[0] is not None:
        return bool(state[1])  # a pull under way: decided by its first page
    return not connection.exec_driver_sql(_HOLDS_ANY).scalar()


def _write_state(connection: Connection, values: dict[str, Any]) -> None:
    """Update the sync state's columns (names of ours; values ints, text, booleans, None)."""
    assignments = ", ".join(f'"{name}" = ?' for name in values)
    connection.exec_driver_sql(
        f'UPDATE "{SyncState.__tablename__}" SET {assignments}',  # noqa: S608 - our names
        tuple(values.values()),
    )


_PARAMETERS: dict[tuple[str, tuple[str, ...], str], Callable[[Any], list[tuple[Any, ...]]]] = {}


def _parameters(
    table: str, names: tuple[str, ...], dialect: Any
) -> Callable[[Any], list[tuple[Any, ...]]]:
    key = (table, names, dialect.name)
    convert = _PARAMETERS.get(key)
    if convert is None:
        convert = _PARAMETERS[key] = sqlite_rows(BY_NAME[table].table, names, dialect)
    return convert


def _upsert(
    connection: Connection,
    name: str,
    names: list[str],
    values: list[tuple[Any, ...]],
    *,
    fresh: bool = False,
) -> None:
    """Insert or update rows by id (values as SQLite parameters, in the order of `names`).

    In a fresh snapshot no local row can be the same thing under another id, and a row comes
    once (the table is walked by id), so rows are plainly inserted: an "upsert" probes the id
    before it inserts, which costs as much again. Accounts are the exception: one created
    during the snapshot may come with two of its pages. (A row that came twice anyway would
    fail the page, and the pull would start again the careful way.)"""
    entry = BY_NAME[name]
    position = {column: index for index, column in enumerate(names)}
    if "id" not in position:
        raise SyncError(_("The server sent rows of %(name)s without their ids.", name=name))
    # The server's row wins over a local one that is the same thing under another id.
    for key in entry.natural_keys if not fresh else ():
        if not all(column in position for column in key):
            continue
        where = " AND ".join(f'"{column}" = ?' for column in key)
        spots = [position[column] for column in key] + [position["id"]]
        params = [
            tuple([row[spot] for spot in spots])
            for row in values
            if all(row[spot] is not None for spot in spots)
        ]
        if params:
            connection.exec_driver_sql(
                f'DELETE FROM "{name}" WHERE {where} AND id != ?',  # noqa: S608 - our names
                params,
            )
    quoted = ", ".join(f'"{column}"' for column in names)
    updates = ", ".join(f'"{column}" = excluded."{column}"' for column in names if column != "id")
    marks = ", ".join("?" * len(names))
    statement = f'INSERT INTO "{name}" ({quoted}) VALUES ({marks})'  # noqa: S608 - our names
    if not fresh or name == "users":
        statement += (
            f" ON CONFLICT (id) DO UPDATE SET {updates}" if updates else " ON CONFLICT DO NOTHING"
        )
    connection.exec_driver_sql(statement, values)


def _prune(connection: Connection) -> None:
    """After a snapshot: remove what the device holds outside its scope, children first,
    except rows with changes still waiting to be pushed."""
    for entry in reversed(SYNCED_TABLES):
        table = entry.table
        seen = select(SnapshotSeen.row_id).where(SnapshotSeen.table_name == entry.name)
        waiting = select(OutboxEntry.row_id).where(OutboxEntry.table_name == entry.name)
        gone = and_(table.c.id.not_in(seen), table.c.id.not_in(waiting))
        if entry.model is User:
            accounts.remove(connection, gone)
        else:
            connection.execute(delete(table).where(gone))
    connection.execute(delete(SnapshotSeen))
