"""Import jobs: the uploaded file, its progress and its report, kept in the data directory.

A job runs in the background (portal/jobs.py: an RQ worker on the central server, a thread on the
desktop) so that a large file does not hold a web request open. Its progress is written to a
small JSON file (atomically, by rename) that the job page polls: not to the database, because on
SQLite the import's own transaction holds the write lock until it ends. The folder is in the
shared directory, so every server instance shows every job. One import runs at a time: per
process by a lock, and across hosts by a PostgreSQL advisory lock held for its transaction.

    <shared dir>/imports/<job id>/upload.csv    the file as uploaded
    <shared dir>/imports/<job id>/state.json      phase, progress, counts (rewritten while running)
    <shared dir>/imports/<job id>/report.json     the report of the last check or import
    <shared dir>/imports/<job id>/passwords.csv   one-time passwords, deleted once downloaded
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

from portal.admin import csv_import
from portal.admin.exports import to_csv
from portal.errors import NotFound, ValidationError
from portal.models import User, utcnow

log = logging.getLogger(__name__)

RUNNING_PHASES = ("queued", "checking", "importing")
KEEP_FOR = timedelta(days=7)
STALLED_AFTER = timedelta(minutes=10)  # no progress written for this long: the worker died
PROGRESS_INTERVAL = 0.5  # seconds between progress writes
_import_lock = threading.Lock()
IMPORT_LOCK_KEY = 7_310_001  # pg_advisory_xact_lock key: one import at a time on the server


@dataclass
class JobState:
    id: str
    kind: str
    filename: str
    size: int
    sha256: str
    actor: str
    created_at: str
    updated_at: str
    phase: str = "queued"  # queued, checking, checked, importing, imported, failed
    mode: str = "check"  # check or import
    step: str = "Waiting to start"
    done: int = 0
    total: int = 0
    rows: int = 0
    ok: bool | None = None
    error_count: int = 0
    warning_count: int = 0
    imported: int = 0
    summary: str = ""
    passwords_ready: bool = False

    @property
    def running(self) -> bool:
        return self.phase in RUNNING_PHASES

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.done / self.total)) if self.total else 0

    @property
    def stalled(self) -> bool:
        updated = datetime.fromisoformat(self.updated_at)
        return self.running and utcnow() - updated > STALLED_AFTER

    @property
    def can_import(self) -> bool:
        """After a clean dry run, or after an import that broke off (a retry)."""
        return (self.phase == "checked" and bool(self.ok)) or (
            self.phase == "failed" and self.mode == "import"
        )

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)


def _timestamp() -> str:
    """Now, as the job files store it."""
    return utcnow().isoformat()


class JobStore:
    """Jobs as folders under `root`; ids are UUIDs, so no user input ever becomes a path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, job_id: str) -> Path:
        try:
            canonical = str(uuid.UUID(job_id))
        except ValueError:
            raise NotFound(_("No such import.")) from None
        return self.root / canonical

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, path)

    def create(self, kind: str, filename: str, data: bytes, actor: str) -> JobState:
        if kind not in csv_import.KINDS:
            raise ValidationError(_("Unknown kind of import %(kind)s.", kind=repr(kind)))
        job_id = str(uuid.uuid4())
        folder = self.root / job_id
        folder.mkdir(parents=True, mode=0o700)
        (folder / "upload.csv").write_bytes(data)
        state = JobState(
            id=job_id,
            kind=kind,
            filename=os.path.basename(filename.replace("\\", "/"))[:200] or "upload.csv",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            actor=actor,
            created_at=_timestamp(),
            updated_at=_timestamp(),
        )
        self.save(state)
        return state

    def get(self, job_id: str) -> JobState:
        path = self._dir(job_id) / "state.json"
        try:
            return JobState(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise NotFound(_("No such import; imports are kept for seven days.")) from None

    def save(self, state: JobState) -> None:
        state.updated_at = _timestamp()
        self._write_json(self._dir(state.id) / "state.json", asdict(state))

    def upload(self, job_id: str) -> bytes:
        return (self._dir(job_id) / "upload.csv").read_bytes()

    def save_report(self, job_id: str, report: csv_import.ImportReport) -> None:
        self._write_json(self._dir(job_id) / "report.json", report.to_dict())

    def report(self, job_id: str) -> csv_import.ImportReport | None:
        try:
            data = json.loads((self._dir(job_id) / "report.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return csv_import.ImportReport.from_dict(data)

    def claim(self, job_id: str, mode: str) -> bool:
        """True for the first caller only (a second click on Import starts nothing)."""
        try:
            fd = os.open(self._dir(job_id) / f"{mode}.claimed", os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def release(self, job_id: str, mode: str) -> None:
        """Allow another run of `mode` (after a run that broke off)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._dir(job_id) / f"{mode}.claimed")

    def save_passwords(self, job_id: str, passwords: list[tuple[str, str]]) -> None:
        path = self._dir(job_id) / "passwords.csv"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(to_csv(("username", "one_time_password"), passwords))

    def take_passwords(self, job_id: str) -> str | None:
        """The one-time passwords file, once: it is deleted as it is handed out."""
        path = self._dir(job_id) / "passwords.csv"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        path.unlink()
        state = self.get(job_id)
        state.passwords_ready = False
        self.save(state)
        return text

    def recent(self, limit: int = 20) -> list[JobState]:
        """The newest jobs first; jobs older than a week are removed on the way."""
        if not self.root.exists():
            return []
        jobs = []
        cutoff = utcnow() - KEEP_FOR
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            try:
                state = self.get(folder.name)
            except (NotFound, ValueError, TypeError, json.JSONDecodeError):
                continue
            if state.created < cutoff and not state.running:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            jobs.append(state)
        jobs.sort(key=lambda s: s.created_at, reverse=True)
        return jobs[:limit]


class _ProgressWriter:
    """Saves progress at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, store: JobStore, state: JobState) -> None:
        self.store, self.state = store, state
        self.last = 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        changed_step = step != self.state.step
        self.state.step, self.state.done, self.state.total = step, done, total
        now = time.monotonic()
        if changed_step or now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            self.store.save(self.state)


def mark_queued(store: JobStore, job_id: str, mode: str) -> JobState:
    """Show the job as waiting from the moment it is handed to the queue: a worker may take a
    moment to start it, and the job page must not show the previous result meanwhile."""
    state = store.get(job_id)
    state.mode, state.phase, state.step = mode, "queued", _("Waiting to start")
    state.done = state.total = 0
    store.save(state)
    return state


def execute(
    store: JobStore,
    job_id: str,
    mode: str,
    db: Session,
    *,
    actor: User | None,
    now: datetime,
) -> JobState:
    """Run the dry run ("check") or the import of a job; commits only a whole, clean import."""
    state = store.get(job_id)
    state.mode, state.phase, state.step = (
        mode,
        "queued",
        _("Waiting for another import to finish"),
    )
    store.save(state)
    with _import_lock:
        state.phase = "checking" if mode == "check" else "importing"
        state.step, state.done, state.total = _("Reading the file"), 0, 0
        store.save(state)
        progress = _ProgressWriter(store, state)
        passwords: list[tuple[str, str]] = []
        try:
            _lock_imports(db)
            data = store.upload(job_id)
            if mode == "check":
                report = csv_import.check_file(db, state.kind, data, now=now, progress=progress)
                db.rollback()
            else:
                report = csv_import.import_file(
                    db,
                    state.kind,
                    data,
                    actor=actor,
                    now=now,
                    source=f"{state.filename} (sha256 {state.sha256[:12]})",
                    progress=progress,
                )
                if report.ok:
                    state.step = _("Saving")
                    store.save(state)
                    db.commit()
                    passwords = list(report.one_time_passwords)
                else:
                    db.rollback()
        except Exception:
            db.rollback()
            log.exception("import job %s (%s) failed", job_id, mode)
            store.release(job_id, mode)
            state.phase, state.ok = "failed", False
            state.summary = _(
                "The import stopped because of an unexpected error; nothing was imported. "
                "Try again, and tell IT support if it keeps happening."
            )
            store.save(state)
            return state
        if passwords:
            store.save_passwords(job_id, passwords)
        store.save_report(job_id, report)
        state.rows, state.ok = report.rows, report.ok
        state.error_count, state.warning_count = report.error_count, report.warning_count
        state.imported, state.summary = report.imported, report.summary
        state.passwords_ready = bool(passwords)
        if mode == "check":
            state.phase = "checked"
        else:
            state.phase = "imported" if report.ok else "checked"
        state.step, state.done = _("Done"), state.total
        store.save(state)
        return state


def _lock_imports(db: Session) -> None:
    """Across processes and hosts (PostgreSQL): wait for another import's transaction to end.
    SQLite needs nothing more: its write transaction (BEGIN IMMEDIATE) already serialises."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK_KEY})
