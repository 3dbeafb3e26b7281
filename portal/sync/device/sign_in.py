"""On an enrolled copy: a person's sign-in through the campus server's own pages, for people
who sign in there by single sign-on (portal/sync/server/sign_in.py is the server's side), and
the offline PIN they choose for the days without a network.

Browser (RFC 8252): the copy makes a PKCE verifier and a state, opens the system browser at
the server's authorize page with its loopback address as the return address, and waits; the
browser comes back to `/sign-in/callback` with a one-time code, which the copy exchanges,
authenticated as the enrolled device, with the verifier. The window, which the browser cannot
reach, learns of the outcome by polling (`PendingSignIns` keeps each attempt in the process).

Device code (RFC 8628): the copy asks the server for a code pair, shows the user code and
the address, and polls the server (at its interval, slower when told `slow_down`).
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask_babel import gettext as _
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.accounts.services import password_matches, slow_verifier
from portal.errors import Forbidden, OfflineSignInExpired, ValidationError
from portal.models import OfflinePin, User
from portal.sync.device import runner as device
from portal.sync.device.client import SyncError, Transport

ATTEMPT_SECONDS = 10 * 60.0  # a browser sign-in not finished by then is forgotten
ATTEMPTS_KEPT = 50
PIN_MIN_LENGTH = 6
BROWSER = "browser"
CODE = "code"
CALLBACK_PATH = "/sign-in/callback"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def _s256(verifier: str) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Attempt:
    """One sign-in in progress, started from the window (whose session holds `id`)."""

    id: str
    kind: str  # browser | code
    expires: float
    state: str = ""
    verifier: str = ""
    redirect_uri: str = ""
    authorize_url: str = ""
    device_code: str = ""
    user_code: str = ""
    verification_uri: str = ""
    interval: float = 5.0
    next_poll: float = 0.0
    user_id: uuid.UUID | None = None  # signed in through the server
    error: str = ""  # ended without a sign-in: why
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def finished(self) -> bool:
        return self.user_id is not None or bool(self.error)


class PendingSignIns:
    """The attempts of this process (a copy is one process), by id and by state. A state is
    taken once; an attempt expires after ATTEMPT_SECONDS of the `clock`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._attempts: dict[str, Attempt] = {}
        self._by_state: dict[str, str] = {}
        self._lock = threading.Lock()

    def _add(self, attempt: Attempt) -> Attempt:
        with self._lock:
            now = self.clock()
            for key in [k for k, a in self._attempts.items() if a.expires <= now]:
                self._forget(key)
            while len(self._attempts) >= ATTEMPTS_KEPT:
                self._forget(next(iter(self._attempts)))
            self._attempts[attempt.id] = attempt
            if attempt.state:
                self._by_state[attempt.state] = attempt.id
        return attempt

    def _forget(self, key: str) -> None:
        attempt = self._attempts.pop(key, None)
        if attempt is not None:
            self._by_state.pop(attempt.state, None)

    def start_browser(self, server_url: str, device_id: str, redirect_uri: str) -> Attempt:
        """A new browser sign-in: its PKCE verifier, state and the authorize page's URL."""
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(24)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": device_id,
                "redirect_uri": redirect_uri,
                "code_challenge": _s256(verifier),
                "code_challenge_method": "S256",
                "state": state,
            }
        )
        return self._add(
            Attempt(
                id=secrets.token_urlsafe(16),
                kind=BROWSER,
                expires=self.clock() + ATTEMPT_SECONDS,
                state=state,
                verifier=verifier,
                redirect_uri=redirect_uri,
                authorize_url=f"{server_url.rstrip('/')}/sync/sign-in/authorize?{query}",
            )
        )

    def start_code(self, answer: dict[str, Any]) -> Attempt:
        """A new device-code sign-in from the server's answer (RFC 8628 3.2)."""
        now = self.clock()
        interval = float(answer.get("interval") or 5)
        return self._add(
            Attempt(
                id=secrets.token_urlsafe(16),
                kind=CODE,
                expires=now + min(float(answer.get("expires_in") or 600), ATTEMPT_SECONDS),
                device_code=str(answer["device_code"]),
                user_code=str(answer["user_code"]),
                verification_uri=str(answer["verification_uri"]),
                interval=interval,
                next_poll=now + interval,
            )
        )

    def get(self, attempt_id: str) -> Attempt | None:
        with self._lock:
            attempt = self._attempts.get(attempt_id)
            if attempt is None:
                return None
            if attempt.expires <= self.clock() and not attempt.finished:
                attempt.error = _("The sign-in took too long. Start it again.")
            return attempt

    def take_state(self, state: str) -> Attempt | None:
        """The waiting browser attempt of `state`, once; None when unknown, used or expired."""
        with self._lock:
            key = self._by_state.pop(state, None)
            attempt = self._attempts.get(key) if key else None
            if attempt is None or attempt.finished or attempt.expires <= self.clock():
                return None
            return attempt

    def end(self, attempt_id: str) -> None:
        with self._lock:
            self._forget(attempt_id)


# --- Talking to the server ------------------------------------------------------------------


def _transport(runner: device.SyncRunner) -> Transport:
    from portal.sync.device import client

    state = client.state_of(runner.engine)
    return Transport(state.server_url, state.credential, runner.http)


def server_reachable(runner: device.SyncRunner) -> bool:
    """Asks the server now (its status), and keeps whether it offers single sign-on."""
    try:
        answer = _transport(runner).json("GET", "/status")
    except SyncError as error:
        runner.online = error.reason != "unreachable"
        return error.reason != "unreachable"
    runner.online = True
    if isinstance(answer.get("single_sign_on"), bool):
        from portal.models import SyncState

        with runner.engine.begin() as connection:
            connection.execute(
                update(SyncState).values(server_single_sign_on=answer["single_sign_on"])
            )
    return True


def request_device_code(runner: device.SyncRunner, pending: PendingSignIns) -> Attempt:
    """RFC 8628 3.1: a code pair for this device. Raises SyncError."""
    answer = _transport(runner).json("POST", "/sign-in/device", {})
    runner.online = True
    return pending.start_code(answer)


def _signed_in(runner: device.SyncRunner, attempt: Attempt, account: dict[str, Any]) -> None:
    """The server gave the account: a sync brings it (and its data) here, and the time of this
    online sign-in starts the offline period of the person's PIN."""
    runner.online = True
    user_id = uuid.UUID(str(account["id"]))
    try:
        runner.run()
    except SyncError as error:
        attempt.error = str(error)
        return
    with runner.engine.connect() as connection:
        here = connection.execute(select(User.id).where(User.id == user_id)).first()
    if here is None:
        attempt.error = _(
            "The campus server accepted the sign-in, but this computer has not received the "
            "account yet. Wait for the sync to finish and try again."
        )
        return
    record_online_sign_in(runner.engine, user_id, now=_utcnow())
    attempt.user_id = user_id


def _utcnow() -> datetime:
    from portal.models import utcnow

    return utcnow()


def exchange_code(runner: device.SyncRunner, attempt: Attempt, code: str) -> None:
    """The browser came back with a code: exchanged with the verifier (RFC 7636), then the
    account is brought here. The outcome is on the attempt (the window polls it)."""
    with attempt.lock:
        if attempt.finished:
            return
        try:
            account = _transport(runner).json(
                "POST",
                "/sign-in/token",
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "code_verifier": attempt.verifier,
                    "redirect_uri": attempt.redirect_uri,
                },
            )
        except SyncError as error:
            attempt.error = str(error)
            return
        _signed_in(runner, attempt, account)


def poll_device_code(runner: device.SyncRunner, attempt: Attempt, now: float) -> None:
    """One poll of the server when the attempt's interval has passed (RFC 8628 3.4-3.5)."""
    with attempt.lock:
        if attempt.finished or now < attempt.next_poll:
            return
        try:
            account = _transport(runner).json(
                "POST",
                "/sign-in/token",
                {"grant_type": DEVICE_GRANT_TYPE, "device_code": attempt.device_code},
            )
        except SyncError as error:
            if error.code == "authorization_pending":
                attempt.next_poll = now + attempt.interval
            elif error.code == "slow_down":
                attempt.interval += 5
                attempt.next_poll = now + attempt.interval
            elif error.reason == "unreachable":
                runner.online = False
                attempt.next_poll = now + attempt.interval  # keeps trying while it may
            else:  # expired_token, access_denied, invalid_grant, ...
                attempt.error = str(error)
            return
        _signed_in(runner, attempt, account)


# --- The offline PIN -------------------------------------------------------------------------


def pin_problem(pin: str) -> str:
    """What is wrong with a PIN someone chose ("" when nothing)."""
    if not pin.isdigit() or not pin.isascii():
        return _("A PIN is made of digits only.")
    if len(pin) < PIN_MIN_LENGTH:
        return _("A PIN has at least %(count)s digits.", count=PIN_MIN_LENGTH)
    if len(set(pin)) == 1:
        return _("A PIN cannot be the same digit repeated.")
    if pin in "01234567890" or pin in "09876543210":
        return _("A PIN cannot be a run of digits such as 123456.")
    return ""


def record_online_sign_in(engine: Engine, user_id: uuid.UUID, *, now: datetime) -> None:
    """The person signed in through the server now: their offline period starts again."""
    with engine.begin() as connection:
        connection.execute(
            sqlite_insert(OfflinePin)
            .values(user_id=user_id, pin_hash="", online_at=now)
            .on_conflict_do_update(index_elements=["user_id"], set_={"online_at": now})
        )


def needs_pin(db: Session, user: User) -> bool:
    """A person who signed in through the server's pages and has no offline PIN here yet
    (asked after each such sign-in until they choose one)."""
    pin = db.get(OfflinePin, user.id)
    return pin is None or not pin.pin_hash


def set_pin(db: Session, user: User, pin: str, *, now: datetime) -> None:
    """Keeps a slow verifier (Argon2id) of the PIN the person chose; ValidationError when the
    PIN is too weak."""
    if problem := pin_problem(pin):
        raise ValidationError(problem)
    row = db.get(OfflinePin, user.id)
    if row is None:
        row = OfflinePin(user_id=user.id, online_at=now)
        db.add(row)
    row.pin_hash = slow_verifier(pin)


@functools.cache
def _dummy_hash() -> str:
    return slow_verifier(secrets.token_urlsafe(16))


def has_pins(db: Session) -> bool:
    """Whether someone chose an offline PIN here (read from the table: the log-in page, the
    first of every start, sets up no ORM mapper)."""
    table = OfflinePin.__table__.c
    return (
        db.execute(select(table.user_id).where(table.pin_hash != "").limit(1)).first() is not None
    )


def check_pin(
    db: Session, username: str, pin: str, *, now: datetime, offline_days: int
) -> User | None:
    """The active account with this username and PIN, or None; with the right PIN,
    OfflineSignInExpired when the last online sign-in is more than `offline_days` ago, and
    Forbidden when the account was deactivated (learnt at a sync)."""
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    row = db.get(OfflinePin, user.id) if user is not None else None
    if user is None or row is None or not row.pin_hash:
        password_matches(_dummy_hash(), pin)  # as slow as a wrong PIN
        return None
    if not password_matches(row.pin_hash, pin):
        return None
    if not user.is_active:  # the right PIN: the person is told why it no longer works
        raise Forbidden(_("This account has been deactivated. Ask an administrator."))
    if now - row.online_at > timedelta(days=offline_days):
        raise OfflineSignInExpired(
            _(
                "Your last online sign-in on this computer was more than %(days)s days ago, so "
                "it no longer accepts your offline PIN. Connect to the campus network (or the "
                "internet) and choose \u201cSign in with your campus account\u201d; after that "
                "your PIN works here offline for another %(days)s days.",
                days=offline_days,
            )
        )
    user.last_login_at = now
    return user
