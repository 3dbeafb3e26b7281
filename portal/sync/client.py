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
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    case,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from portal.models import OutboxEntry, SnapshotSeen, SyncState, User
from portal.sync import hlc
from portal.sync.tables import BY_NAME, SYNCED_TABLES, sqlite_rows

if TYPE_CHECKING:  # imported when a sync talks to the server: a start needs no HTTP client
    import httpx

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
# The problem a server answers to a pull whose cursor it never issued (services.UnknownCursor).
UNKNOWN_CURSOR = "urn:campus-portal:sync:unknown-cursor"
PUSH_BATCH = 200
CHUNK_BYTES = 1024 * 1024
TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 30.0, 5.0
GZIP_FROM_BYTES = 1024
FILE_TABLES = frozenset({"stored_files", "submissions"})  # their rows name files
BIG_PAGE_ROWS = 2000  # a pulled page larger than this is written with a larger page cache
# A pull's first pages ask for at most this many rows, and each next one for as many as the pull
# has brought so far (the server caps a page at its own size): the device starts writing early
# and writes while the server reads the next page, and a large scope still travels in large
# pages (each a transaction on the device: fewer is faster).
FIRST_PAGE_ROWS = 5000
MOST_PAGE_ROWS = 1_000_000
APPLY_CACHE_KIB = 64 * 1024

Progress = Callable[[str, int, int], None]  # (phase, done, total)

_running = threading.Lock()


class SyncStopped(Exception):
    """The portal is shutting down: a running sync stops between two batches (each written
    atomically), or abandons the page it is waiting for."""


class SyncError(Exception):
    """Sync could not complete; `str()` says why in words a user understands. Nothing local
    is lost: the outbox keeps every change that did not get through."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
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
                f"The certificate file set as ca_file ({ca_file}) cannot be used: "
                f"{getattr(exc, 'strerror', None) or exc}. Ask IT to correct the setting.",
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
    return (
        f"The campus server's certificate is not trusted by this computer ({host}: {reason}). "
        "If the campus uses its own certificate authority, IT adds it to the operating "
        "system's certificate store or names its file in the ca_file setting "
        "(see the IT guide); otherwise check the address."
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
        headers = {"X-Sync-Protocol": str(PROTOCOL_VERSION), "User-Agent": _user_agent()}
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
                "The campus server cannot be reached (no network, or the server is down).",
                reason="unreachable",
            ) from None
        received, boot_received = time.time(), hlc.boot_clock()
        if server_time := response.headers.get("X-Server-Time"):
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
            raise SyncError("The campus server sent an answer that is not JSON.") from None
        if not isinstance(data, dict):
            raise SyncError("The campus server sent an unexpected answer.")
        return data

    @staticmethod
    def _problem(response: httpx.Response) -> SyncError:
        try:
            problem = response.json()
            detail = str(problem.get("detail") or "")
            kind = str(problem.get("type") or "")
        except (ValueError, AttributeError):
            detail = kind = ""
        status = response.status_code
        if status == 422 and kind == UNKNOWN_CURSOR:
            return SyncError(detail, reason="cursor")
        if status == 426:
            return SyncError(
                detail or "The campus server does not speak this version.", reason="protocol"
            )
        if status == 403:
            revoked = "revoked" in detail
            return SyncError(
                detail or "The campus server refused this device.",
                reason="revoked" if revoked else "refused",
            )
        if status == 404 and not detail:
            return SyncError("The address given is not a Campus Portal server.", reason="refused")
        if status >= 500:
            return SyncError(
                f"The campus server had a problem ({status}); try again later.", reason="busy"
            )
        return SyncError(
            detail or f"The campus server refused the request ({status}).", reason="refused"
        )


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
        raise SyncError("The server address must start with https:// (or http://).", reason="local")
    server_url = server_url.rstrip("/")
    with engine.connect() as connection:
        state = connection.execute(select(SyncState)).first()
        if state is None and connection.execute(select(func.count(User.id))).scalar():
            raise SyncError(
                "This data folder already holds accounts created on this computer; connect a "
                "new data folder to the campus server instead (--data-dir).",
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
                f"This computer is connected to {state.server_url}; a data folder stays with "
                "the server it was enrolled with (connect a new data folder with --data-dir).",
                reason="local",
            )
        body["credential"] = state.credential
        body["new_credential"] = next_credential(state.credential, code)
    transport = Transport(server_url, client=client)
    answer = transport.json("POST", "/enrol", body)
    with engine.begin() as connection:
        if state is None:
            connection.execute(
                insert(SyncState).values(
                    id=1,
                    server_url=server_url,
                    device_id=uuid.UUID(answer["device_id"]),
                    credential=answer["token"],
                    clock_offset_ms=transport.offset_ms or 0,
                    **_clock_values(transport),
                )
            )
        else:
            if answer.get("device_id") != str(state.device_id):
                raise SyncError("The campus server answered for another device.")
            connection.execute(
                update(SyncState).values(
                    credential=answer["token"],
                    revoked=False,
                    last_error="",
                    clock_offset_ms=transport.offset_ms or state.clock_offset_ms,
                    **_clock_values(transport, str(state.device_id)),
                )
            )
    return str(answer["user"]["username"])


def next_credential(credential: str, code: str) -> str:
    """The credential a revoked device asks for when it enrols again: derived from its old one
    (a secret) and the code, so that a retry after a lost answer asks for the same one."""
    import base64
    import hmac

    from portal.sync.services import normalise_code

    mac = hmac.new(credential.encode(), normalise_code(code).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def join_account(
    engine: Engine, username: str, password: str, *, client: httpx.Client | None = None
) -> None:
    """A person's first sign-in on this device: the server checks the password and adds the
    account to the device; the next sync brings its data and its verifier."""
    state = _state(engine)
    transport = Transport(state.server_url, state.credential, client)
    transport.json("POST", "/accounts", {"username": username, "password": password})


# --- One sync -------------------------------------------------------------------------------


def _state(engine: Engine) -> Any:
    with engine.connect() as connection:
        state = connection.execute(select(SyncState)).first()
    if state is None:
        raise SyncError("This computer is not connected to a campus server.", reason="local")
    return state


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count(OutboxEntry.seq))).scalar() or 0)


def sync_once(
    engine: Engine,
    upload_dir: Path,
    *,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Push everything waiting, then pull until up to date. Raises SyncError (recorded in the
    sync state for the status area) when something stops it, SyncStopped when `stop` is set
    while it waits for a page (or when `progress` raises it between two batches)."""
    with _running:
        state = _state(engine)
        transport = Transport(state.server_url, state.credential, client)
        summary = Summary()
        now = datetime.now(UTC)
        try:
            _push(engine, transport, upload_dir, summary, progress)
            _pull(engine, transport, upload_dir, summary, progress, stop)
        except SyncError as error:
            _record(
                engine,
                attempt=now,
                error=str(error),
                revoked=error.reason == "revoked",
                clock=transport,
                node=str(state.device_id),
            )
            raise
        _record(
            engine,
            attempt=now,
            error="",
            summary=summary.line(),
            done=datetime.now(UTC),
            clock=transport,
            node=str(state.device_id),
        )
        return summary


def _record(
    engine: Engine,
    *,
    attempt: datetime,
    error: str,
    summary: str | None = None,
    done: datetime | None = None,
    revoked: bool = False,
    clock: Transport | None = None,
    node: str = "",
) -> None:
    values: dict[str, Any] = {"last_attempt_at": attempt, "last_error": error}
    if summary is not None:
        values["last_summary"] = summary
    if done is not None:
        values["last_sync_at"] = done
        values["revoked"] = False
    if revoked:
        values["revoked"] = True
    if clock is not None and clock.offset_ms is not None:
        values["clock_offset_ms"] = clock.offset_ms
        values.update(_clock_values(clock, node))
    with engine.begin() as connection:
        connection.execute(update(SyncState).values(**values))


def _clock_values(transport: Transport, node: str = "") -> dict[str, Any]:
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


def _push(
    engine: Engine,
    transport: Transport,
    upload_dir: Path,
    summary: Summary,
    progress: Progress | None,
) -> None:
    total = pending_count(engine)
    done = 0
    skipped: set[uuid.UUID] = set()
    while True:
        with engine.connect() as connection:
            entries = connection.execute(
                select(OutboxEntry)
                .where(OutboxEntry.change_id.not_in(skipped) if skipped else true())
                .order_by(OutboxEntry.seq)
                .limit(PUSH_BATCH)
            ).all()
        if not entries:
            return
        for entry in entries:
            if entry.table_name == "stored_files" and entry.op == "insert":
                _upload_file(transport, upload_dir, str(entry.fields.get("sha256", "")))
                summary.files += 1
            elif entry.table_name == "submissions" and entry.op == "insert":
                # The file may have travelled under an earlier change, or not whole: the server
                # answers "waiting" until it has it, so make sure it does (a status call when
                # it is already there).
                _upload_file(transport, upload_dir, str(entry.fields.get("file_sha256", "")))
        body = {
            "changes": [
                {
                    "change_id": str(entry.change_id),
                    "table": entry.table_name,
                    "row_id": str(entry.row_id),
                    "op": entry.op,
                    "fields": entry.fields,
                    "hlc": entry.hlc,
                    "base_cursor": entry.base_cursor,
                    "actor_id": str(entry.actor_id) if entry.actor_id else None,
                }
                for entry in entries
            ],
            "pending": max(total - done - len(entries), 0),  # once this batch is through
        }
        answer = transport.json("POST", "/push", body)
        handled = []
        for result in answer.get("results", []):
            try:
                change_id = uuid.UUID(str(result.get("change_id")))
            except ValueError:
                continue
            status = result.get("status")
            # A refusal, malformed changes included, is kept by the server for its author
            # (My sync conflicts): the change leaves the outbox like any answered one.
            if status in ("applied", "ignored", "superseded", "refused"):
                handled.append(change_id)
                summary.pushed += 1
                summary.conflicts += status == "superseded"
                summary.refused += status == "refused"
            else:
                skipped.add(change_id)
        sent = {entry.change_id for entry in entries}
        skipped.update(sent - set(handled))
        if handled:
            with engine.begin() as connection:
                connection.execute(delete(OutboxEntry).where(OutboxEntry.change_id.in_(handled)))
        done += len(entries)
        if progress:
            progress("push", min(done, total), total)


def _upload_file(transport: Transport, upload_dir: Path, sha256: str) -> None:
    from portal.submissions import storage

    path = storage.blob_path(upload_dir, sha256)
    if not path.is_file():
        return  # not on this computer: nothing to send (the server answers "waiting")
    state = transport.json("GET", f"/files/{sha256}/status")
    if state.get("complete"):
        return
    offset = int(state.get("received") or 0)
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(offset)
        while True:
            chunk = handle.read(CHUNK_BYTES)
            last = offset + len(chunk) >= size
            headers = {"X-File-Complete": "1"} if last else {}
            response = transport.call(
                "PUT",
                f"/files/{sha256}?offset={offset}",
                None,
                content=chunk,
                headers={
                    **transport.headers(),
                    **headers,
                    "Content-Type": "application/octet-stream",
                },
            )
            answer = response.json()
            if last:
                if not answer.get("complete"):
                    raise SyncError(f"The server did not accept the file {sha256[:12]}.")
                return
            offset = int(answer.get("received") or 0)


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
    digest = hashlib.sha256()
    with part.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        part.unlink()
        raise SyncError(
            f"A file from the server did not match its hash ({sha256[:12]}); "
            "it will be fetched again at the next sync."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part.replace(target)


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


def _pull(
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
                    "This computer is not connected to a campus server.", reason="local"
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
                    "The campus server is busy; sync will try again.", reason="busy"
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
            raise SyncError(f"The server sent rows of {table} without their columns.")
        return [(names, rows)]
    shapes: dict[tuple[str, ...], list[Any]] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise SyncError(f"The server sent a bad row of {table}.")
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
        raise SyncError(f"The server sent rows of unknown tables: {', '.join(sorted(unknown))}.")
    snapshot = bool(page.get("snapshot"))
    count = 0
    with connection.begin():
        connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        if sum(len(rows) for rows in rows_by_table.values()) > BIG_PAGE_ROWS:
            _enlarge_cache(connection)
        fresh = snapshot and _fresh(connection)
        for item in page.get("discards", []):
            entry = BY_NAME.get(str(item.get("table")))
            if entry is not None:
                table = entry.table
                connection.execute(delete(table).where(table.c.id == uuid.UUID(str(item["id"]))))
        for entry in SYNCED_TABLES:
            if entry.name in FILE_TABLES and files is not None:
                files()  # a row that names a file only once the file is whole
                files = None
            for names, raw_rows in _travelling(page, entry.name):
                try:
                    convert = _parameters(entry.name, tuple(names), connection.dialect)
                    values = convert(raw_rows)
                except (TypeError, ValueError) as exc:
                    raise SyncError(f"The server sent a bad row: {exc}") from None
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
        raise SyncError(f"The server sent rows of {name} without their ids.")
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
        connection.execute(delete(table).where(table.c.id.not_in(seen), table.c.id.not_in(waiting)))
    connection.execute(delete(SnapshotSeen))


# --- For an administrator -------------------------------------------------------------------


def export_outbox(engine: Engine, target: Path) -> int:
    """Write every change waiting on this device to a JSON file; returns how many."""
    with engine.connect() as connection:
        entries = connection.execute(select(OutboxEntry).order_by(OutboxEntry.seq)).all()
        state = connection.execute(select(SyncState.device_id, SyncState.server_url)).first()
    document = {
        "device_id": str(state.device_id) if state else None,
        "server_url": state.server_url if state else None,
        "exported_at": datetime.now(UTC).isoformat(),
        "changes": [
            {
                "change_id": str(e.change_id),
                "table": e.table_name,
                "row_id": str(e.row_id),
                "op": e.op,
                "fields": e.fields,
                "hlc": e.hlc,
                "actor_id": str(e.actor_id) if e.actor_id else None,
                "created_at": e.created_at.isoformat(),
            }
            for e in entries
        ],
    }
    target.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return len(entries)
