"""On a device: one sync at a time in the background (every few minutes, and the "Sync now"
button), what the status area shows, and a person's first sign-in through the campus server.

Built on client, outbox and pull (which do the syncing); this module only decides when a sync
runs and remembers how it went. The launcher starts the background loop and stops it at
shutdown; a running sync stops between two batches, which the client writes atomically.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import ColumnElement, Connection, Engine, func, literal, select, update
from sqlalchemy.orm import Session

from portal.models import OutboxEntry, SyncConflict, SyncState, User
from portal.sync.device import accounts, outbox, pull
from portal.sync.device import client as sync_client
from portal.sync.device.client import Summary, SyncError, SyncStopped

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

BACKGROUND_INTERVAL = 5 * 60.0  # seconds between syncs while the server answers
OFFLINE_RETRY = 60.0  # seconds between attempts while it does not
FIRST_DELAY = 5.0  # after the start: the window comes first
RUNNER_KEY = "portal_sync_runner"
HTTP_CLIENT_KEY = "portal_sync_http_client"  # an httpx.Client to reach the server (tests)

PHASES = {
    "start": _l("Starting"),
    "push": _l("Sending changes"),
    "pull": _l("Receiving updates"),
}

_running = threading.Lock()


# --- One sync -------------------------------------------------------------------------------


def sync_once(
    engine: Engine,
    upload_dir: Path,
    *,
    progress: sync_client.Progress | None = None,
    client: httpx.Client | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Push everything waiting, then pull until up to date. Raises SyncError (recorded in the
    sync state for the status area) when something stops it, SyncStopped when `stop` is set
    while it waits for a page (or when `progress` raises it between two batches)."""
    with _running:
        state = sync_client.state_of(engine)
        transport = sync_client.Transport(state.server_url, state.credential, client)
        summary = Summary()
        now = datetime.now(UTC)
        try:
            outbox.push(engine, transport, upload_dir, summary, progress)
            pull.pull(engine, transport, upload_dir, summary, progress, stop)
            single_sign_on = _server_single_sign_on(transport)
        except SyncError as refused:
            if refused.deactivated:  # every account here was deactivated on the server
                accounts.retire(engine, refused.deactivated)
            error = sync_client.kept_on_protocol_refusal(engine, refused)
            _record(
                engine,
                attempt=now,
                error=str(error),
                revoked=error.reason == "revoked",
                clock=transport,
                node=str(state.device_id),
            )
            if error is refused:
                raise
            raise error from None
        _record(
            engine,
            attempt=now,
            error="",
            summary=summary.line(),
            done=datetime.now(UTC),
            clock=transport,
            node=str(state.device_id),
            single_sign_on=single_sign_on,
        )
        return summary


def _server_single_sign_on(transport: sync_client.Transport) -> bool | None:
    """Whether the server offers single sign-on now (kept for the log-in page, which shows
    "Sign in with your campus account" from it, offline too); None when it did not say."""
    try:
        answer = transport.json("GET", "/status")
    except SyncError as error:
        log.info("sync: the server's status could not be read: %s", error)
        return None
    offered = answer.get("single_sign_on")
    return offered if isinstance(offered, bool) else None


def _record(
    engine: Engine,
    *,
    attempt: datetime,
    error: str,
    summary: str | None = None,
    done: datetime | None = None,
    revoked: bool = False,
    clock: sync_client.Transport | None = None,
    node: str = "",
    single_sign_on: bool | None = None,
) -> None:
    values: dict[str, Any] = {"last_attempt_at": attempt, "last_error": error}
    if single_sign_on is not None:
        values["server_single_sign_on"] = single_sign_on
    if summary is not None:
        values["last_summary"] = summary
    if done is not None:
        values["last_sync_at"] = done
        values["revoked"] = False
    if revoked:
        values["revoked"] = True
    if clock is not None and clock.offset_ms is not None:
        values["clock_offset_ms"] = clock.offset_ms
        values.update(sync_client.clock_values(clock, node))
    with engine.begin() as connection:
        connection.execute(update(SyncState).values(**values))


@dataclass(frozen=True)
class Outcome:
    """How the last sync of this process ended."""

    ok: bool
    message: str
    reason: str  # "" when it went through; else SyncError.reason
    finished_at: datetime


class SyncRunner:
    """Runs syncs of one device database, never two at once (sync_once holds the process
    lock), and keeps their progress and outcome for the status area."""

    def __init__(
        self,
        engine: Engine,
        upload_dir: Path,
        *,
        http: httpx.Client | None = None,
        ca_file: str = "",
    ):
        self.engine = engine
        self.upload_dir = upload_dir
        self._http = http
        self.ca_file = ca_file  # certificate authorities trusted besides the OS's (IT's setting)
        self.online: bool | None = None  # None: not tried since the start
        self.outcome: Outcome | None = None
        self._guard = threading.Lock()
        self._busy = 0
        self._progress: tuple[str, int, int] = ("start", 0, 0)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.attempts = 0  # syncs ended since the start, however they ended
        self.ended = threading.Condition()  # notified each time a sync ends

    @property
    def http(self) -> httpx.Client:
        """The HTTP client that reaches the server, made at the first sync (a start needs none).
        Raises SyncError when the `ca_file` setting names a file that cannot be used."""
        if self._http is None:
            self._http = sync_client.http_client(self.ca_file)
        return self._http

    @http.setter
    def http(self, client: httpx.Client) -> None:
        self._http = client

    # --- running a sync ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @property
    def progress(self) -> tuple[str, int, int]:
        return self._progress

    def run(self) -> Summary:
        """One sync in the caller's thread (after the one already running, if any).
        Raises SyncError, whose text says what went wrong."""
        with self._guard:
            self._busy += 1
        try:
            return self._sync()
        finally:
            with self._guard:
                self._busy -= 1

    def start(self) -> bool:
        """Start a sync in a background thread; False when one is already running."""
        with self._guard:
            if self._busy or self._stop.is_set():
                return False
            self._busy += 1
        thread = threading.Thread(target=self._run_started, name="sync-now", daemon=True)
        self._threads = [*(t for t in self._threads if t.is_alive()), thread]
        thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the syncs started with start() to end; False if one still runs."""
        for thread in [t for t in self._threads if t.name == "sync-now"]:
            thread.join(timeout)
        return not any(t.is_alive() for t in self._threads if t.name == "sync-now")

    def _run_started(self) -> None:
        try:
            self._sync_logged()
        finally:
            with self._guard:
                self._busy -= 1

    def _sync(self) -> Summary:
        self._progress = ("start", 0, 0)
        try:
            return self._sync_once()
        finally:
            with self.ended:
                self.attempts += 1
                self.ended.notify_all()

    def _sync_once(self) -> Summary:
        try:
            summary = sync_once(
                self.engine,
                self.upload_dir,
                progress=self._report,
                client=self.http,
                stop=self._stop,
            )
        except SyncError as error:
            self.online = error.reason != "unreachable"
            self.outcome = Outcome(False, str(error), error.reason, datetime.now(UTC))
            raise
        self.online = True
        message = _("Sync finished: %(summary)s.", summary=summary.line())
        self.outcome = Outcome(True, message, "", datetime.now(UTC))
        return summary

    def _sync_logged(self) -> Summary | None:
        """A sync nobody waits for: problems go to the status area and the log."""
        try:
            return self._sync()
        except SyncError as error:
            log.info("sync did not complete (%s): %s", error.reason, error)
        except SyncStopped:
            log.info("sync stopped for the shutdown")
        except Exception as exc:  # the loop must survive anything; the log has the details
            log.exception("sync failed")
            self.outcome = Outcome(
                False,
                _(
                    "Sync stopped by an unexpected error (%(kind)s); the log file has the "
                    "details. Your changes are kept and will be sent at the next sync.",
                    kind=type(exc).__name__,
                ),
                "error",
                datetime.now(UTC),
            )
        return None

    def _report(self, phase: str, done: int, total: int) -> None:
        if self._stop.is_set():
            raise SyncStopped
        self._progress = (phase, done, total)

    # --- the background loop -------------------------------------------------------------

    def start_background(
        self,
        *,
        interval: float = BACKGROUND_INTERVAL,
        retry: float = OFFLINE_RETRY,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        """Sync every `interval` seconds while the server answers, every `retry` while it
        does not; nothing while this copy is not enrolled or was revoked."""
        thread = threading.Thread(
            target=self._loop,
            args=(interval, retry, first_delay),
            name="sync-background",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _loop(self, interval: float, retry: float, delay: float) -> None:
        while not self._stop.wait(delay):
            delay = interval
            try:
                state = current_state(self.engine)
            except Exception:
                log.exception("reading the sync state failed")
                continue
            if state is None or state.revoked or self.busy:
                continue
            with self._guard:
                self._busy += 1
            try:
                if self._sync_logged() is None and self.online is False:
                    delay = retry
            finally:
                with self._guard:
                    self._busy -= 1

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop and any running sync (between two batches, or abandoning the page it
        waits for) and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            log.warning("sync thread(s) still running at shutdown: %s", ", ".join(alive))


def runner_for(app: Any) -> SyncRunner:
    """The app's one runner (made on first use), over its engine and upload folder."""
    runner = app.extensions.get(RUNNER_KEY)
    if runner is None:
        from portal.extensions import db

        with app.app_context():
            engine = db.engine
        runner = SyncRunner(
            engine,
            Path(app.config["PORTAL"]["UPLOAD_DIR"]),
            http=app.extensions.get(HTTP_CLIENT_KEY),
            ca_file=app.config["PORTAL"]["CA_FILE"],
        )
        app.extensions[RUNNER_KEY] = runner
    return runner


# --- What the status area shows ------------------------------------------------------------


def current_state(engine: Engine) -> Any:
    """The device's SyncState row, or None when this copy is not enrolled."""
    with engine.connect() as connection:
        return connection.execute(select(SyncState)).first()


@dataclass(frozen=True)
class Status:
    state: str  # syncing | revoked | offline | problem | online | idle
    headline: str
    server_url: str
    pending: int
    last_sync_at: datetime | None
    last_sync_text: str
    message: str  # the last outcome or problem, in words
    phase: str
    done: int
    total: int
    open_conflicts: int

    @property
    def running(self) -> bool:
        return self.state == "syncing"

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.done / self.total)) if self.total else 0

    @property
    def pending_text(self) -> str:
        if self.pending == 0:
            return _("nothing waiting to be sent")
        return ngettext("%(num)d change waiting", "%(num)d changes waiting", self.pending)

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "headline": self.headline,
            "running": self.running,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "percent": self.percent,
            "pending": self.pending,
            "pending_text": self.pending_text,
            "last_sync_at": self.last_sync_at.isoformat() if self.last_sync_at else None,
            "last_sync_text": self.last_sync_text,
            "message": self.message,
            "open_conflicts": self.open_conflicts,
        }


HEADLINES = {
    "syncing": _l("Syncing…"),
    "revoked": _l("This computer was disconnected from the campus server"),
    "offline": _l("Offline"),
    "problem": _l("Sync problem"),
    "online": _l("Online"),
    "idle": _l("Campus server"),
}


def when_text(moment: datetime | None, now: datetime | None = None) -> str:
    """A moment in this computer's time zone, as a person says it: today at 14:05."""
    if moment is None:
        return _("never")
    local = moment.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return _("today at %(time)s", time=clock)
    if local.date() == today - timedelta(days=1):
        return _("yesterday at %(time)s", time=clock)
    day = local.strftime("%d %b %Y").lstrip("0")
    return _("%(day)s at %(time)s", day=day, time=clock)


def status(runner: SyncRunner, db: Session | Connection, *, user_id: Any = None) -> Status | None:
    """Where sync stands on this device, or None when it is not enrolled. Reads through `db`
    (in a request: its own session, which on SQLite already holds the database's write
    transaction; a second connection would wait for it)."""
    # One statement on every page: the state row with its two counts as subqueries. Read from
    # the tables, not through the ORM: the log-in page (the first of every start) then needs no
    # ORM mapper set up.
    table = SyncState.__table__.c
    outbox = OutboxEntry.__table__.c
    conflict = SyncConflict.__table__.c
    open_conflicts: ColumnElement[int] = literal(0)
    if user_id is not None:
        open_conflicts = (
            select(func.count(conflict.id))
            .where(conflict.author_id == user_id, conflict.resolved_at.is_(None))
            .scalar_subquery()
        )
    state = db.execute(
        select(
            table.server_url,
            table.last_sync_at,
            table.last_error,
            table.last_summary,
            table.revoked,
            select(func.count(outbox.seq)).scalar_subquery().label("pending"),
            open_conflicts.label("open_conflicts"),
        )
    ).first()
    if state is None:
        return None
    pending = int(state.pending or 0)
    conflicts = int(state.open_conflicts or 0)
    outcome = runner.outcome
    if state.revoked:
        kind = "revoked"
    elif runner.busy:
        kind = "syncing"
    elif runner.online is False:
        kind = "offline"
    elif state.last_error:
        kind = "problem"
    elif runner.online:
        kind = "online"
    else:
        kind = "idle"
    if kind == "revoked":
        message = _(
            "An administrator revoked this computer's access, so it can no longer sync. "
            "Nothing was deleted: with a new enrolment code for one of the accounts that use "
            "this computer, enrol it again (Enrol again) and the changes waiting here are sent. "
            "You can also export them to a file."
        )
    elif state.last_error:
        message = str(state.last_error)
    elif outcome is not None:
        message = outcome.message
    else:
        message = (
            _("Last sync: %(summary)s.", summary=state.last_summary) if state.last_summary else ""
        )
    phase, done, total = runner.progress if kind == "syncing" else ("", 0, 0)
    return Status(
        state=kind,
        headline=str(HEADLINES[kind]),
        server_url=str(state.server_url),
        pending=pending,
        last_sync_at=state.last_sync_at,
        last_sync_text=when_text(state.last_sync_at),
        message=message,
        phase=str(PHASES.get(phase, phase.capitalize())),
        done=done,
        total=total,
        open_conflicts=conflicts,
    )


# --- Signing in through the server ---------------------------------------------------------


def has_local_verifier(engine: Engine, username: str) -> bool:
    """Whether this account has signed in on this device before (its verifier is here)."""
    with engine.connect() as connection:
        password_hash = connection.execute(
            select(User.password_hash).where(User.username == username.strip().lower())
        ).scalar()
    return bool(password_hash) and password_hash != "!"  # noqa: S105 - "no verifier"


def sign_in_through_server(runner: SyncRunner, username: str, password: str) -> None:
    """A person's first sign-in on this device, or one whose password changed elsewhere: the
    server checks the password and adds the account to the device, then a sync brings the
    account's data and its verifier, so that the local sign-in that follows works (and works
    offline from then on). Raises SyncError, in words the person can act on."""
    try:
        sync_client.join_account(runner.engine, username, password, client=runner.http)
    except SyncError as error:
        runner.online = error.reason != "unreachable"
        if error.reason == "unreachable" and not has_local_verifier(runner.engine, username):
            raise SyncError(
                _(
                    "The first sign-in on this computer needs the network: the campus server "
                    "cannot be reached. Connect to the campus network (or the internet) and try "
                    "again; after that you can sign in here offline."
                ),
                reason="unreachable",
            ) from None
        raise
    runner.online = True
    runner.run()


# --- Connecting a new copy -----------------------------------------------------------------


def connect_to_server(runner: SyncRunner, server_url: str, code: str, *, device_name: str) -> str:
    """Enrol this (empty) copy with the campus server, or a revoked one again (with its own
    server), and start its first sync in the background (the status area shows its progress):
    a revoked copy's sends what waited. Returns the username the code was for.
    Raises SyncError with what to do: address unreachable, code refused, version refused."""
    address = server_url.strip().rstrip("/")
    try:
        username = sync_client.enrol(
            runner.engine, address, code.strip(), device_name=device_name, client=runner.http
        )
    except SyncError as error:
        runner.online = error.reason != "unreachable"
        if error.reason == "unreachable":
            raise SyncError(
                _(
                    "The campus server at %(address)s cannot be reached. Check the address and "
                    "this "
                    "computer's network connection, then try again.",
                    address=address,
                ),
                reason="unreachable",
            ) from None
        raise
    runner.online = True
    runner.start()
    return username
