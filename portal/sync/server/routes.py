"""The sync endpoints devices call on the central server (`/sync/v1/...`, see PROTOCOL.md).

Devices sign every call with their credential (`Authorization: Bearer ...`) and say which
protocol they speak (`X-Sync-Protocol`). Bodies are JSON, compressed both ways when large (answers
as zstd when the device accepts it, else gzip).
Errors are problem details (RFC 9457) whose `detail` a device shows to its user as it is.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, request, send_file, url_for
from flask_babel import gettext as _

from portal.auth.policy import public
from portal.errors import PortalError, ValidationError
from portal.extensions import csrf, db, limiter
from portal.models import Device
from portal.operations import metrics
from portal.sync import protocol
from portal.sync.server import enrolment, sign_in
from portal.sync.server import files as server_files
from portal.sync.server import pull as server_pull
from portal.sync.server import push as server_push
from portal.sync.wire import json_default
from portal.web import db_session

bp = Blueprint("sync", __name__, url_prefix="/sync/v1")
csrf.exempt(bp)

MAX_BODY = 64 * 1024 * 1024  # decompressed


def _now() -> datetime:
    return datetime.now(UTC)


def _problem(
    status: int,
    title: str,
    detail: str,
    kind: str = "about:blank",
    members: dict[str, Any] | None = None,
) -> Response:
    body = {"type": kind, "title": title, "status": status, "detail": detail, **(members or {})}
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    return response


def _json(data: Any, status: int = 200) -> Response:
    # orjson: a snapshot page's thousands of rows are encoded several times faster than by
    # json (the same text: dates and times still go through json_default). The server only:
    # a desktop copy starts without it.
    import orjson

    payload = orjson.dumps(data, default=json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    response = Response(payload, status=status, mimetype="application/json")
    if len(payload) > 1024:
        encoding = _compress(response, payload)
        if encoding:
            response.headers["Content-Encoding"] = encoding
        response.headers["Vary"] = "Accept-Encoding"
    response.headers[protocol.SERVER_TIME_HEADER] = str(protocol.server_time_ms(_now()))
    return response


def _compress(response: Response, payload: bytes) -> str:
    """Compress a large answer as the device accepts: zstd (a snapshot page of a megabyte in
    about 2 ms, unpacked in 1), else gzip (fast levels: compressed for speed rather than
    size); the encoding used, or "" when neither is accepted."""
    accepted = request.accept_encodings
    if accepted["zstd"]:
        import zstandard  # the server only (a desktop copy starts faster without it)

        response.set_data(zstandard.ZstdCompressor(level=1).compress(payload))
        return "zstd"
    if accepted["gzip"]:
        level = 5 if len(payload) < 256 * 1024 else 1
        response.set_data(gzip.compress(payload, compresslevel=level))
        return "gzip"
    return ""


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if request.headers.get("Content-Encoding", "") == "gzip":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
                raw = handle.read(MAX_BODY + 1)
        except (OSError, EOFError):
            raise ValidationError(_("The request body is not valid gzip.")) from None
        if len(raw) > MAX_BODY:
            raise ValidationError(_("The request body is too large."))
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(_("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ValidationError(_("The request body must be a JSON object."))
    return data


def _server_only() -> None:
    if current_app.config["PORTAL"]["MODE"] != "server":
        abort(404)
    protocol.check_protocol(request.headers.get(protocol.PROTOCOL_HEADER))


def _device(*, commit: bool = True, seen: bool = True) -> Device:
    """The calling device (last seen now). `commit=False` leaves the write to the caller's own
    commit: one statement and a reload of the device fewer for a call that commits anyway.
    `seen=False`: a call that only reads, and writes nothing (the device's last contact stays
    as the call before it recorded it)."""
    _server_only()
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    device = enrolment.authenticate_device(db_session(), token, now=_now(), seen=seen)
    if not seen:
        return device
    device.app_version = request.headers.get("User-Agent", "")[:40] or device.app_version
    if commit:
        db.session.commit()
    return device


def _upload_dir() -> Path:
    return Path(current_app.config["PORTAL"]["UPLOAD_DIR"])


def _max_bytes() -> int:
    return int(current_app.config["PORTAL"]["MAX_UPLOAD_MB"]) * 1024 * 1024


@bp.errorhandler(PortalError)
def _refused(error: PortalError) -> Response:
    db.session.rollback()
    titles = {403: "Refused", 404: "Not found", 409: "Conflict", 426: "Protocol not supported"}
    kind = getattr(error, "problem_type", "about:blank")
    members = getattr(error, "problem_members", None)  # a problem type's own members
    return _problem(
        error.status_code, titles.get(error.status_code, "Bad request"), str(error), kind, members
    )


def _guess_limit() -> str:
    """Codes and passwords cannot be guessed faster than log-ins (same setting)."""
    return str(current_app.config["PORTAL"]["LOGIN_RATE_LIMIT"])


@bp.post("/enrol")
@public
@limiter.limit(_guess_limit)
def enrol() -> Response:
    _server_only()
    data = _body()
    if data.get("credential"):  # a revoked device, back with a new code
        enrolled = enrolment.enrol_again(
            db_session(),
            str(data.get("code", "")),
            str(data["credential"]),
            str(data.get("new_credential", "")),
            app_version=str(data.get("app_version", "")),
            now=_now(),
        )
    else:
        enrolled = enrolment.enrol_device(
            db_session(),
            str(data.get("code", "")),
            name=str(data.get("device_name", "")),
            app_version=str(data.get("app_version", "")),
            os_name=str(data.get("os", "")),
            now=_now(),
        )
    db.session.commit()
    return _json(
        {
            "protocol": protocol.PROTOCOL_VERSION,
            "device_id": str(enrolled.device.id),
            "token": enrolled.token,
            "user": {"id": str(enrolled.user.id), "username": enrolled.user.username},
            "single_sign_on": _single_sign_on(),
        },
        201,
    )


def _single_sign_on() -> bool:
    """Whether people sign in here by single sign-on: their copies then offer the sign-in
    through this server's pages (sign_in_routes), with no password to forward."""
    return "oidc" in current_app.config["PORTAL"]["SIGN_IN_METHODS"]


@bp.post("/accounts")
@public
@limiter.limit(_guess_limit)
def add_account() -> Response:
    device = _device()
    data = _body()
    user = enrolment.add_account(
        db_session(),
        device,
        str(data.get("username", "")),
        str(data.get("password", "")),
        now=_now(),
        settings=current_app.config["PORTAL"],
    )
    db.session.commit()
    return _json({"id": str(user.id), "username": user.username, "role": user.role})


def _account(user: object) -> dict[str, str]:
    from portal.models import User

    assert isinstance(user, User)
    return {"id": str(user.id), "username": user.username, "role": user.role}


def _grant_refused(error: sign_in.GrantRefused) -> Response:
    """An exchange or poll refused (RFC 6749 5.2 / RFC 8628 3.5): `error` for the copy, the
    problem's `detail` for the person. A poll's bookkeeping (its time, a longer interval)
    is kept."""
    db.session.commit()
    body = {
        "type": "about:blank",
        "title": _("Bad request"),
        "status": 400,
        "detail": str(error),
        "error": error.error,
        "error_description": str(error),
    }
    return Response(json.dumps(body), status=400, mimetype="application/problem+json")


@bp.post("/sign-in/device")
@public
@limiter.limit(_guess_limit)
def sign_in_device() -> Response:
    """RFC 8628 3.1-3.2: a code pair for a sign-in on the calling device."""
    device = _device(commit=False)
    started = sign_in.start_device_authorization(db_session(), device, now=_now())
    db.session.commit()
    page = url_for("device_sign_in.device_page", _external=True)
    return _json(
        {
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": page,
            "verification_uri_complete": url_for(
                "device_sign_in.device_page", user_code=started.user_code, _external=True
            ),
            "expires_in": started.expires_in,
            "interval": started.interval,
        }
    )


@bp.post("/sign-in/token")
@public
def sign_in_token() -> Response:
    """The account of a sign-in on the calling device: a loopback code with its PKCE verifier
    (RFC 8252, RFC 7636), or a device code once the person confirmed it (RFC 8628 3.4).
    Not limited like log-ins: the caller holds a device credential, the codes are 256-bit
    random, and a device code's polls are paced by slow_down."""
    device = _device(commit=False)
    data = _body()
    grant_type = str(data.get("grant_type", ""))
    try:
        if grant_type == "authorization_code":
            user = sign_in.redeem_loopback_code(
                db_session(),
                device,
                code=str(data.get("code", "")),
                verifier=str(data.get("code_verifier", "")),
                redirect_uri=str(data.get("redirect_uri", "")),
                now=_now(),
            )
        elif grant_type == sign_in.DEVICE_GRANT_TYPE:
            user = sign_in.poll_device_code(
                db_session(), device, str(data.get("device_code", "")), now=_now()
            )
        else:
            raise sign_in.GrantRefused(
                "unsupported_grant_type",
                _("Unknown grant_type %(value)s.", value=repr(grant_type)),
            )
    except sign_in.GrantRefused as error:
        return _grant_refused(error)
    db.session.commit()
    return _json(_account(user))


@bp.post("/push")
@public
def push() -> Response:
    device = _device()
    data = _body()
    changes = data.get("changes")
    if not isinstance(changes, list):
        raise ValidationError(_("changes must be a list."))
    pending = data.get("pending")
    results = server_push.push(
        db_session(),
        device,
        changes,
        now=_now(),
        upload_dir=_upload_dir(),
        max_upload_bytes=_max_bytes(),
        pending=pending if isinstance(pending, int) and not isinstance(pending, bool) else None,
    )
    pushed = metrics.counter(
        "portal_sync_pushed_changes_total", "Changes pushed by devices, by outcome", ("status",)
    )
    for result in results:
        pushed.labels(status=result.status).inc()
    return _json({"results": [result.as_json() for result in results]})


@bp.post("/pull")
@public
def pull() -> Response:
    device = _device(commit=False)  # server_pull.pull commits
    version = protocol.check_protocol(request.headers.get(protocol.PROTOCOL_HEADER))
    page = server_pull.pull(
        db_session(),
        device,
        server_pull.PullRequest.parse(_body()),
        now=_now(),
        protocol=version,
        snapshot_rows=int(current_app.config["PORTAL"]["SYNC_SNAPSHOT_PAGE_ROWS"]),
    )
    metrics.counter("portal_sync_pulls_total", "Pull pages served to devices").inc()
    metrics.counter("portal_sync_pulled_rows_total", "Rows sent to devices by pulls").inc(
        sum(len(rows) for rows in page["rows"].values())
    )
    return _json(page)


@bp.get("/status")
@public
def status() -> Response:
    device = _device()
    return _json(
        {
            "protocol": protocol.PROTOCOL_VERSION,
            "device_id": str(device.id),
            "revoked": device.revoked_at is not None,
            "last_sync_at": device.last_sync_at.isoformat() if device.last_sync_at else None,
            "single_sign_on": _single_sign_on(),
        }
    )


@bp.put("/files/<sha256>")
@public
def upload_file(sha256: str) -> Response:
    device = _device()
    try:
        offset = int(request.args.get("offset", "0"))
    except ValueError:
        raise ValidationError(_("offset must be a whole number.")) from None
    data = request.get_data(cache=False)
    state = server_files.receive_chunk(
        _upload_dir(), device.id, sha256, offset, data, max_bytes=_max_bytes()
    )
    if not state["complete"] and request.headers.get("X-File-Complete") == "1":
        state["complete"] = server_files.finish_file(_upload_dir(), device.id, sha256)
    return _json(state, 200 if state.get("detail") is None else 409)


@bp.get("/files/<sha256>/status")
@public
def file_status(sha256: str) -> Response:
    device = _device()
    from portal.submissions import storage

    if len(sha256) != 64:
        raise ValidationError(_("A file is named by its sha256."))
    if storage.blob_path(_upload_dir(), sha256).is_file():
        return _json({"received": None, "complete": True})
    part = server_files.partial_path(_upload_dir(), device.id, sha256)
    return _json({"received": part.stat().st_size if part.exists() else 0, "complete": False})


@bp.get("/files/<sha256>")
@public
def download_file(sha256: str) -> Response:
    # Read only: the pull that named the file has just recorded the device's last contact
    # (a first sync fetches its files several at a time; each would otherwise commit a write).
    device = _device(seen=False)
    from portal.submissions import storage

    if not server_files.file_visible(db_session(), device, sha256):
        raise enrolment.DeviceRefused(_("That file is not in this device's scope."))
    path = storage.blob_path(_upload_dir(), sha256)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="application/octet-stream", conditional=True)
