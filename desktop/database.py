"""The local SQLite file: checks before use, schema upgrade with a backup first, WAL checkpoint."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from desktop import backups
from desktop.i18n import _
from desktop.paths import DataPaths, make_owner_only
from desktop.problems import DatabaseProblem, DataDirProblem

log = logging.getLogger(__name__)

# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26
LOW_DISK_BYTES = 50 * 1024 * 1024
FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def check_data_dir(paths: DataPaths) -> list[str]:
    """Create the data directory and prove it is writable; return warnings (low disk space)."""
    folder = paths.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        make_owner_only(folder)
    except OSError as exc:
        raise DataDirProblem(
            _("Campus Portal cannot create its data folder"),
            _(
                "%(folder)s: %(strerror)s. Choose another folder with --data-dir, or ask IT "
                "support to make this one writable for you.",
                folder=folder,
                strerror=exc.strerror,
            ),
        ) from exc
    probe = folder / f".write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise DataDirProblem(
                _("The disk holding your Campus Portal data is full"),
                _(
                    "Nothing can be saved in %(folder)s. Free some space on that disk and start "
                    "Campus Portal again; your data is unchanged.",
                    folder=folder,
                ),
                backups=backups.list_backups(paths),
            ) from exc
        raise DataDirProblem(
            _("Campus Portal's data folder is read-only"),
            _(
                "%(folder)s: %(strerror)s. Campus Portal needs to write there to save your work. "
                "Ask IT support to make it writable for you, or start with --data-dir pointing "
                "to a writable folder. Your data is unchanged.",
                folder=folder,
                strerror=exc.strerror,
            ),
            backups=backups.list_backups(paths),
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    warnings = []
    free = shutil.disk_usage(folder).free
    if free < LOW_DISK_BYTES:
        warnings.append(
            _(
                "Only %(megabytes)s MB free on the disk holding %(folder)s: saving may fail soon. "
                "Free some space.",
                megabytes=free // (1024 * 1024),
                folder=folder,
            )
        )
    return warnings


def check_database_file(paths: DataPaths, *, timeout: float = 2.0) -> None:
    """Refuse a database that another program has locked, or that is damaged or foreign.

    Reads the header and the schema and takes (and rolls back) a write lock: cheap, so that
    every start does it. Deeper damage is caught by the quick check of the daily backup.
    """
    path = paths.database
    if not path.exists():
        return
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(backups.SQLITE_HEADER))
    except OSError as exc:
        raise DataDirProblem(
            _("Campus Portal cannot read its database"),
            _(
                "%(path)s: %(strerror)s. Ask IT support to check the file's permissions.",
                path=path,
                strerror=exc.strerror,
            ),
        ) from exc
    if header and header != backups.SQLITE_HEADER:
        raise _damaged(paths, "the file is not an SQLite database")
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.Error as exc:
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code in {SQLITE_BUSY, SQLITE_LOCKED}:
            raise DatabaseProblem(
                _("The database is locked by another program"),
                _(
                    "%(path)s is in use by another program (a database browser, a backup or "
                    "synchronisation tool?). Close it and start Campus Portal again. Nothing was "
                    "changed.",
                    path=path,
                ),
            ) from exc
        if code in {SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM}:
            raise DataDirProblem(
                _("Campus Portal cannot write to its database"),
                _(
                    "%(path)s: %(exc)s. Ask IT support to make the file and its folder writable "
                    "for you. Nothing was changed.",
                    path=path,
                    exc=exc,
                ),
                backups=backups.list_backups(paths),
            ) from exc
        if code == SQLITE_FULL:
            raise DataDirProblem(
                _("The disk holding your Campus Portal data is full"),
                _("%(path)s: free some space and start again. Nothing was changed.", path=path),
            ) from exc
        raise _damaged(paths, str(exc)) from exc
    finally:
        connection.close()


def _damaged(paths: DataPaths, reason: str) -> DatabaseProblem:
    return DatabaseProblem(
        _("The database file is damaged"),
        _(
            "%(database)s cannot be opened (%(reason)s). Campus Portal has not changed it. "
            "You can restore a backup (the damaged file is kept), or ask IT support to "
            "recover it.",
            database=paths.database,
            reason=reason,
        ),
        backups=backups.list_backups(paths),
    )


def current_revision(path: Path) -> str | None:
    """The schema revision stored in the file, or None for a new or empty database."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    connection = sqlite3.connect(path, timeout=15)
    try:
        has_table = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        if not has_table:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None
    finally:
        connection.close()


def head_revisions(migrations_dir: Path) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory(str(migrations_dir)).get_heads())


def migrate(app: Any, paths: DataPaths) -> Path | None:
    """Bring the schema to the newest revision; back up first when that changes a database
    that holds data. Returns the backup made, if any.

    A database already at the portal's SCHEMA_REVISION is the usual start: one SQLite query
    decides it, without importing Alembic (a large share of the start-up time)."""
    from portal import MIGRATIONS_DIR
    from portal.database import SCHEMA_REVISION, upgrade_schema

    before = current_revision(paths.database)
    if before == SCHEMA_REVISION:
        return None
    heads = head_revisions(MIGRATIONS_DIR)
    if before is not None and before in heads:
        return None
    backup: Path | None = None
    if before is not None:
        if not _known_revision(MIGRATIONS_DIR, before):
            raise DatabaseProblem(
                _("This database comes from a newer Campus Portal"),
                _(
                    "%(database)s has schema revision %(before)s, which this version does not "
                    "know. Install the newer version again, or restore an older backup.",
                    database=paths.database,
                    before=before,
                ),
                backups=backups.list_backups(paths),
            )
        stamp = backups.stamp()
        backup = backups.online_backup(
            paths.database, paths.backups_dir / "pre-migration" / f"portal-{before}-{stamp}.db"
        )
    log.info("upgrading the database schema from %s to %s", before, ", ".join(sorted(heads)))
    try:
        with app.app_context():
            upgrade_schema()
    except Exception as exc:
        log.exception("schema upgrade failed")
        raise DatabaseProblem(
            _("The database could not be brought up to date"),
            _(
                "The upgrade of %(database)s failed (%(exc)s). The file is as it was before "
                "(a copy was saved at %(backup)s).",
                database=paths.database,
                exc=exc,
                backup=backup,
            )
            if backup
            else _(
                "The upgrade of %(database)s failed (%(exc)s). The file is as it was before.",
                database=paths.database,
                exc=exc,
            ),
            backups=backups.list_backups(paths),
        ) from exc
    return backup


def _known_revision(migrations_dir: Path, revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(migrations_dir)).get_revision(revision) is not None
    except CommandError:
        return False


def checkpoint(path: Path) -> tuple[int, int, int] | None:
    """Move the WAL into the database file and truncate it (clean shutdown)."""
    if not path.exists():
        return None
    connection = sqlite3.connect(path, timeout=15)
    try:
        row = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    log.info("WAL checkpoint: busy=%s log=%s checkpointed=%s", *row)
    return int(row[0]), int(row[1]), int(row[2])
