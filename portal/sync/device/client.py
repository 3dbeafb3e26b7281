"""The device's side of sync: enrol, push the outbox, pull the scope, move files.

Works on the SQLAlchemy engine of the device's database, from the running app (background
sync, the "Sync now" button) or from a shell (`campus-portal sync`). Pulled rows are written
with Core statements, so they never enter the outbox; each page and its progress (and, with the
last page, the new cursor) are written in one transaction.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import (
    Engine,
    case,
    func,
    insert,
    select,
    update,
)

from portal.models import OutboxEntry, SyncState, User
from portal.sync import hlc, protocol

if TYPE_CHECKING:  # imported when a sync talks to the server: a start needs no HTTP client
    import httpx

log = logging.getLogger(__name__)

TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 30.0, 5.0
GZIP_FROM_BYTES = 1024

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class SyncStopped(Exception):
    """The portal is shutting down: a running sync stops between two batches (each written
    atomically), or abandons the page it is waiting for."""


class SyncError(Exception):
    """Sync could not complete; `str()` says why in words a user understands. Nothing local
    is lost: the outbox keeps every change that did not get through."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "error",
        code: str = "",
        deactivated: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        # The device's accounts the server says are no longer active, when none is left
        # (protocol.NO_ACTIVE_ACCOUNT): the device stops signing them in.
        self.deactivated = deactivated
        # The OAuth error of a refused sign-in exchange or poll (RFC 6749 5.2, RFC 8628 3.5):
        # invalid_grant, authorization_pending, slow_down, expired_token, access_denied.
        self.code = code
        # unreachable | untrusted | revoked | protocol | refused | busy | local (this data
        # folder cannot do what was asked; nothing was sent) | error (an answer that could not
        # be used);
        # cursor: the server never issued the device's cursor (answered by a pull from scratch)
        self.reason = reason


@dataclass
class Summary:
    pushed: int = 0
    pulled: int = 0
    conflicts: int = 0
    refused: int = 0
    files: int = 0

    def line(self) -> str:
        return f"pushed {self.pushed}, pulled {self.pulled}, conflicts {self.conflicts}" + (
            f", refused {self.refused}" if self.refused else ""
        )


def _user_agent() -> str:
    from portal import __version__

    return f"campus-portal/{__version__}"


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """What the device trusts in the campus server's certificate: the operating system's own
    store (Windows, macOS: their certificate stores through truststore; Linux: the system's
    bundle, /etc/ssl/certs), and the certificate authorities in `ca_file` (PEM) when IT set
    one. A `ca_file` that cannot be read stops here with a SyncError that names it."""
    import truststore

    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SyncError(
                _(
                    "The certificate file set as ca_file (%(ca_file)s) cannot be used: "
                    "%(reason)s. Ask IT to correct the setting.",
                    ca_file=ca_file,
                    reason=getattr(exc, "strerror", None) or exc,
                ),
                reason="untrusted",
            ) from None
    return context


def http_client(ca_file: str = "") -> httpx.Client:
    """The HTTP client of a device's sync: the trust of tls_context(), the protocol's timeouts."""
    import httpx

    return httpx.Client(
        verify=tls_context(ca_file),
        timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
    )


def _untrusted_certificate(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed somewhere in a transport error's chain, if one did."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _untrusted_message(url: str, failure: ssl.SSLCertVerificationError) -> str:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or url
    reason = failure.verify_message or failure.reason or str(failure)
    return _(
        "The campus server's certificate is not trusted by this computer (%(host)s: "
        "%(reason)s). If the campus uses its own certificate authority, IT adds it to the "
        "operating system's certificate store or names its file in the ca_file setting (see "
        "the IT guide); otherwise check the address.",
        host=host,
        reason=reason,
    )


def operating_system() -> str:
    """This computer's operating system as people name it ("Debian GNU/Linux 12 (bookworm)",
    "Windows 11", "macOS 14.5"), for the server's Devices page."""
    import platform

    system = platform.system()
    if system == "Darwin":
        return f"macOS {platform.mac_ver()[0]}".strip()
    if system == "Linux":
        try:
            return platform.freedesktop_os_release()["PRETTY_NAME"]
        except (OSError, KeyError):
            return f"Linux {platform.release()}"
    return f"{system} {platform.release()}".strip() or "unknown"


def default_device_name() -> str:
    """The name a copy proposes for itself: the person's account on this computer and the
    computer's name ("sam@lab-pc-4"), so that two copies on one computer differ."""
    import getpass
    import platform

    node = platform.node() or "computer"
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return node
    return f"{user}@{node}"


class Transport:
    """HTTP to the central server: JSON in and out (gzip both ways), problems made readable."""

    def __init__(self, server_url: str, token: str = "", client: httpx.Client | None = None):
        self.base = server_url.rstrip("/") + "/sync/v1"
        self.client = client if client is not None else http_client()
        self.token = token
        self.offset_ms: int | None = None  # the server's clock minus the wall clock
        self.boot: tuple[str, int] | None = None  # (boot, the server's clock minus boot clock)
        self.server_ms: int | None = None  # the server's clock at its last answer
        self.round_trip = float("inf")  # seconds, of the call the offsets were measured by

    def headers(self) -> dict[str, str]:
        headers = {
            protocol.PROTOCOL_HEADER: str(protocol.PROTOCOL_VERSION),
            "User-Agent": _user_agent(),
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """One request; `body` is sent as gzipped JSON, or raw bytes as `content=` (with their
        own `headers=`, added to the protocol's)."""
        import httpx

        headers = {**self.headers(), **kwargs.pop("headers", {})}
        content = kwargs.pop("content", None)
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
            if len(content) > GZIP_FROM_BYTES:  # a small body is sent as it is
                content = gzip.compress(content, 5)
                headers["Content-Encoding"] = "gzip"
        sent, boot_sent = time.time(), hlc.boot_clock()
        try:
            response = self.client.request(
                method, self.base + path, content=content, headers=headers, **kwargs
            )
        except httpx.TransportError as exc:
            log.info("sync: %s %s failed: %r", method, path, exc)
            if (failure := _untrusted_certificate(exc)) is not None:
                raise SyncError(
                    _untrusted_message(self.base, failure), reason="untrusted"
                ) from None
            raise SyncError(
                _("The campus server cannot be reached (no network, or the server is down)."),
                reason="unreachable",
            ) from None
        received, boot_received = time.time(), hlc.boot_clock()
        if server_time := response.headers.get(protocol.SERVER_TIME_HEADER):
            self.server_ms = int(server_time)
            # The server's clock was read somewhere within the round trip: the quickest call
            # of a sync says best where (as NTP keeps its sample of least delay).
            if received - sent <= self.round_trip:
                self.round_trip = received - sent
                self.offset_ms = self.server_ms - int((sent + received) / 2 * 1000)
                if boot_sent and boot_received and boot_sent[0] == boot_received[0]:
                    middle = (boot_sent[1] + boot_received[1]) // 2
                    self.boot = (boot_sent[0], self.server_ms - middle)
        if response.status_code >= 400:
            raise self._problem(response)
        return response

    def json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        import orjson  # with the HTTP client: a start needs neither

        response = self.call(method, path, body)
        try:
            data = orjson.loads(response.content)  # a page of thousands of rows: faster than json
        except ValueError:
            raise SyncError(_("The campus server sent an answer that is not JSON.")) from None
        if not isinstance(data, dict):
            raise SyncError(_("The campus server sent an unexpected answer."))
        return data

    @staticmethod
    def _problem(response: httpx.Response) -> SyncError:
        deactivated: tuple[str, ...] = ()
        try:
            problem = response.json()
            detail = str(problem.get("detail") or "")
            kind = str(problem.get("type") or "")
            code = str(problem.get("error") or "")
            if kind == protocol.NO_ACTIVE_ACCOUNT and isinstance(problem.get("deactivated"), list):
                deactivated = tuple(str(account) for account in problem["deactivated"])
        except (ValueError, AttributeError):
            detail = kind = code = ""
        status = response.status_code
        if status == 400 and code:
            return SyncError(detail, reason="refused", code=code)
        if status == 422 and kind == protocol.UNKNOWN_CURSOR:
            return SyncError(detail, reason="cursor")
        if status == 426:
            return SyncError(
                _version_only(detail) or _("The campus server does not speak this version."),
                reason="protocol",
            )
        if status == 403:
            # A server before the problem type said it in English words only.
            revoked = kind == protocol.DEVICE_REVOKED or "revoked" in detail
            return SyncError(
                detail or _("The campus server refused this device."),
                reason="revoked" if revoked else "refused",
                deactivated=deactivated,
            )
        if status == 404 and not detail:
            return SyncError(
                _("The address given is not a Campus Portal server."), reason="refused"
            )
        if status >= 500:
            return SyncError(
                _("The campus server had a problem (%(status)s); try again later.", status=status),
                reason="busy",
            )
        return SyncError(
            detail or _("The campus server refused the request (%(status)s).", status=status),
            reason="refused",
        )


# Servers before 2026-12 ended their 426 with this whether changes waited or not; the device
# says what becomes of its changes itself (kept_on_protocol_refusal), only when some wait.
_OLD_SERVERS_KEPT_CLAUSE = "; your changes are kept on this computer"


def _version_only(detail: str) -> str:
    """The server's refusal of this app's protocol, without an old server's word on changes."""
    said, cut, _rest = detail.partition(_OLD_SERVERS_KEPT_CLAUSE)
    return f"{said}." if cut else detail


def kept_on_protocol_refusal(engine: Engine, error: SyncError) -> SyncError:
    """A refusal of this app's protocol, saying that the changes waiting here are kept (and
    how many) when some wait; any other error as it is."""
    if error.reason != "protocol":
        return error
    waiting = pending_count(engine)
    if not waiting:
        return error
    kept = ngettext(
        "%(num)d change waiting on this computer is kept and will be sent once this computer "
        "can sync again.",
        "%(num)d changes waiting on this computer are kept and will be sent once this computer "
        "can sync again.",
        waiting,
    )
    return SyncError(f"{error} {kept}", reason=error.reason, code=error.code)


def clock_values(transport: Transport, node: str = "") -> dict[str, Any]:
    """What a call to the server taught the device's clock: the boot clock's offset to the
    server's (when measured in one boot), and, given the device's `node`, that its next edit is
    dated after the server's time of that call (the local clock never goes back)."""
    values: dict[str, Any] = {}
    if transport.boot is not None:
        values["boot_id"], values["boot_offset_ms"] = transport.boot
    if node and transport.server_ms is not None:
        floor = str(hlc.Timestamp(transport.server_ms, 0, node))
        values["last_hlc"] = case((SyncState.last_hlc < floor, floor), else_=SyncState.last_hlc)
    return values


# --- Enrolment ------------------------------------------------------------------------------


def is_enrolled(engine: Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(SyncState.id)).first() is not None


def enrol(
    engine: Engine,
    server_url: str,
    code: str,
    *,
    device_name: str,
    client: httpx.Client | None = None,
) -> str:
    """Enrol this database with the server; returns the account's username.

    A database that holds accounts of its own is refused (its data could not be reconciled).
    One already enrolled with this server enrols again when the server revoked it: the same
    device under a new credential, its waiting changes kept for the next sync (the server
    refuses a device that is still connected, and a code for an account not of this device)."""
    if not server_url.startswith(("http://", "https://")):
        raise SyncError(
            _("The server address must start with https:// (or http://)."), reason="local"
        )
    server_url = server_url.rstrip("/")
    with engine.connect() as connection:
        state = connection.execute(select(SyncState)).first()
        if state is None and connection.execute(select(func.count(User.id))).scalar():
            raise SyncError(
                _(
                    "This data folder already holds accounts created on this computer; connect a "
                    "new data folder to the campus server instead (--data-dir)."
                ),
                reason="local",
            )
    body = {
        "code": code,
        "device_name": device_name,
        "app_version": _user_agent(),
        "os": operating_system(),
    }
    if state is not None:
        if state.server_url != server_url:
            raise SyncError(
                _(
                    "This computer is connected to %(server_url)s; a data folder stays with the "
                    "server it was enrolled with (connect a new data folder with --data-dir).",
                    server_url=state.server_url,
                ),
                reason="local",
            )
        body["credential"] = state.credential
        body["new_credential"] = next_credential(state.credential, code)
    transport = Transport(server_url, client=client)
    try:
        answer = transport.json("POST", "/enrol", body)
    except SyncError as error:
        raise kept_on_protocol_refusal(engine, error) from None
    with engine.begin() as connection:
        if state is None:
            connection.execute(
                insert(SyncState).values(
                    id=1,
                    server_url=server_url,
                    device_id=uuid.UUID(answer["device_id"]),
                    credential=answer["token"],
                    clock_offset_ms=transport.offset_ms or 0,
                    server_single_sign_on=bool(answer.get("single_sign_on")),
                    **clock_values(transport),
                )
            )
        else:
            if answer.get("device_id") != str(state.device_id):
                raise SyncError(_("The campus server answered for another device."))
            connection.execute(
                update(SyncState).values(
                    credential=answer["token"],
                    revoked=False,
                    last_error="",
                    clock_offset_ms=transport.offset_ms or state.clock_offset_ms,
                    **clock_values(transport, str(state.device_id)),
                )
            )
    return str(answer["user"]["username"])


def next_credential(credential: str, code: str) -> str:
    """The credential a revoked device asks for when it enrols again: derived from its old one
    (a secret) and the code, so that a retry after a lost answer asks for the same one."""
    import base64
    import hmac

    mac = hmac.new(
        credential.encode(), protocol.normalise_code(code).encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def join_account(
    engine: Engine, username: str, password: str, *, client: httpx.Client | None = None
) -> None:
    """A person's first sign-in on this device: the server checks the password and adds the
    account to the device; the next sync brings its data and its verifier."""
    state = state_of(engine)
    transport = Transport(state.server_url, state.credential, client)
    transport.json("POST", "/accounts", {"username": username, "password": password})


def state_of(engine: Engine) -> Any:
    with engine.connect() as connection:
        state = connection.execute(select(SyncState)).first()
    if state is None:
        raise SyncError(_("This computer is not connected to a campus server."), reason="local")
    return state


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count(OutboxEntry.seq))).scalar() or 0)
