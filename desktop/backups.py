"""Backups of the local database with SQLite's online backup API, restore, daily rotation.

Layout under `<data dir>/backups/`:

    daily/portal-YYYYMMDD-HHMMSS.db          one a day at most, the newest N kept
    pre-migration/portal-<rev>-<time>.db     before a schema upgrade changes the file
    manual/portal-<time>.db                  `campus-portal backup` without --to
    before-restore/portal-<time>.db          the file a restore replaced
    damaged/<time>/                          raw copies of a file too damaged to back up
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from desktop.i18n import _
from desktop.paths import DataPaths
from desktop.problems import DatabaseProblem

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
STAMP_FORMAT = "%Y%m%d-%H%M%S"


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime(STAMP_FORMAT)


def _connect_for_reading(path: Path) -> sqlite3.Connection:
    """A connection that can read `path`, even from a folder this user cannot write to.

    SQLite needs to create the WAL index (-shm) to read a WAL database; in a read-only folder
    it cannot, so the file is then opened as immutable, which is exact only when no WAL
    content is pending (the launcher truncates the WAL on every clean stop).
    """
    if not path.is_file():
        raise DatabaseProblem(
            _("There is no database to back up"), _("%(path)s does not exist.", path=path)
        )
    connection = sqlite3.connect(path, timeout=15)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError as exc:
        connection.close()
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise
        log.warning("reading %s as immutable (%s)", path, exc)
        return sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)


def online_backup(source: Path, target: Path) -> Path:
    """Copy a live database (WAL content included) into `target`, atomically.

    The copy is written next to the target first and renamed when complete, so a crash or a
    full disk never leaves a half-written file under the final name. The copy uses the
    rollback journal (one self-contained file).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    src = _connect_for_reading(source)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.commit()
        finally:
            dst.close()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    finally:
        src.close()
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    log.info("backup of %s written to %s", source, target)
    return target


def check_backup_file(path: Path) -> str:
    """Raise DatabaseProblem unless `path` is a healthy Campus Portal database; return its
    schema revision."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseProblem(_("Cannot read the backup"), f"{path}: {exc.strerror}") from exc
    if header != SQLITE_HEADER:
        raise DatabaseProblem(
            _("Not a database file"), _("%(path)s is not an SQLite database.", path=path)
        )
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise DatabaseProblem(
                _("The backup is damaged"),
                _("%(path)s: integrity check: %(result)s", path=path, result=result),
            )
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DatabaseProblem(
            _("Not a Campus Portal backup"),
            _("%(path)s cannot be used: %(exc)s", path=path, exc=exc),
        ) from exc
    finally:
        connection.close()
    if row is None:
        raise DatabaseProblem(
            _("Not a Campus Portal backup"), _("%(path)s has no schema revision.", path=path)
        )
    return str(row[0])


def keep_raw_copy(paths: DataPaths, now: datetime | None = None) -> Path:
    """Copy the database file and its WAL side files as they are (for a damaged database)."""
    folder = paths.backups_dir / "damaged" / stamp(now)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(paths.database) + suffix)
        if source.exists():
            shutil.copy2(source, folder / source.name)
    return folder


def restore(paths: DataPaths, source: Path) -> tuple[Path, Path | None]:
    """Replace the database with `source`; return (restored file, where the old one was kept).

    The caller holds the single-instance lock (no server is running on this data dir).
    The current file is backed up first (or copied raw when it is too damaged for that).
    """
    source = source.expanduser().resolve()
    check_backup_file(source)
    kept: Path | None = None
    database = paths.database
    if database.exists():
        try:
            kept = online_backup(
                database, paths.backups_dir / "before-restore" / f"portal-{stamp()}.db"
            )
        except sqlite3.DatabaseError as exc:
            log.warning("current database cannot be backed up (%s); keeping a raw copy", exc)
            kept = keep_raw_copy(paths)
    incoming = database.with_name(database.name + ".restoring")
    online_backup(source, incoming)
    for suffix in ("-wal", "-shm", ""):
        with contextlib.suppress(FileNotFoundError):
            Path(str(database) + suffix).unlink()
    os.replace(incoming, database)
    log.info("database restored from %s (previous file kept at %s)", source, kept)
    return database, kept


def list_backups(paths: DataPaths) -> list[Path]:
    """Every backup file of this data dir, newest first."""
    if not paths.backups_dir.is_dir():
        return []
    found = [p for p in paths.backups_dir.rglob("*.db") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def daily_backup(paths: DataPaths, *, keep: int, now: datetime | None = None) -> Path | None:
    """Back up once per calendar day (local time), then keep only the newest `keep`.

    A database that fails its quick check is not backed up (a damaged copy must not push the
    good ones out of the rotation).
    """
    now = now or datetime.now()
    folder = paths.backups_dir / "daily"
    for leftover in folder.glob("*.partial") if folder.is_dir() else []:
        leftover.unlink()  # from a backup cut short by a crash
    existing = sorted(folder.glob("portal-*.db")) if folder.is_dir() else []
    today = now.strftime("%Y%m%d")
    if existing and existing[-1].name.startswith(f"portal-{today}-"):
        return None
    if not paths.database.is_file():
        return None
    connection = sqlite3.connect(paths.database, timeout=15)
    try:
        result = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        result = str(exc)
    finally:
        connection.close()
    if result != "ok":
        log.error("daily backup skipped: the database fails its quick check (%s)", result)
        return None
    made = online_backup(paths.database, folder / f"portal-{stamp(now)}.db")
    rotate(folder, keep)
    return made


def rotate(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in `folder`; return the deleted ones."""
    backups = sorted(folder.glob("portal-*.db"))
    doomed = backups[:-keep] if keep > 0 else backups
    for path in doomed:
        path.unlink()
        log.info("old daily backup removed: %s", path)
    return doomed
