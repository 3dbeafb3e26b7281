"""A person's sign-in on an enrolled copy through the central server's own pages, for people
who sign in here by single sign-on (no password the copy could forward).

Two ways, as native programs do it:

- loopback (RFC 8252): the copy opens the system browser at the server's authorize page with
  a PKCE challenge (S256) and its local address `http://127.0.0.1:<port>/sign-in/callback`;
  the person, signed in on the server by any method, confirms, and the server redirects there
  with a one-time code. The copy exchanges it, authenticated as the enrolled device, with the
  PKCE verifier.
- device code (RFC 8628): the copy asks for a code pair; the person types the short user code
  at `<server>/device` on a phone, signs in there and confirms; the copy polls with the
  device code.

Codes are random, only their sha256 is kept, they are bound to the device (and the loopback
code to its challenge and address), expire in minutes, and are taken once by a conditional
UPDATE (two exchanges racing for one code cannot both win). Every rule takes `now`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.errors import PortalError, ValidationError
from portal.models import Device, DeviceSignInGrant, User
from portal.sync.server import enrolment

LOOPBACK = "loopback"
DEVICE = "device"
LOOPBACK_CODE_SECONDS = 120  # from the person's confirmation to the copy's exchange
DEVICE_CODE_SECONDS = 600  # time to find a phone, sign in and type the code
POLL_SECONDS = 5  # RFC 8628's default interval; slow_down adds 5
CALLBACK_PATH = "/sign-in/callback"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 6.1: no vowels, no look-alikes
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a sha256, unpadded
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 4.1


class SignInRequestInvalid(ValidationError):
    """The copy's request to the authorize page cannot be answered (never redirected)."""


class GrantRefused(PortalError):
    """An exchange or poll the server refuses; `error` is the OAuth error code (RFC 6749 5.2,
    RFC 8628 3.5) the copy acts on, the message what the person is told."""

    status_code = 400

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def s256(verifier: str) -> str:
    """The PKCE challenge of a verifier (RFC 7636 4.2, S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def loopback_redirect_uri(value: str) -> str:
    """`value` when it is a copy's loopback callback (`http://127.0.0.1:PORT/sign-in/callback`
    or `http://[::1]:PORT/...`), else SignInRequestInvalid: a code is only ever sent to the
    computer the person sits at."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (
        parts.scheme != "http"
        or parts.hostname not in ("127.0.0.1", "::1")
        or not port
        or parts.username is not None
        or parts.path != CALLBACK_PATH
        or parts.query
        or parts.fragment
    ):
        raise SignInRequestInvalid(
            _(
                "This sign-in link was not made by Campus Portal on your computer "
                "(its return address is not the computer's own). Start the sign-in again "
                "from Campus Portal."
            )
        )
    return value


def sign_in_device(db: Session, device_id: str) -> Device:
    """The enrolled, not revoked, device named by a sign-in request."""
    try:
        device = db.get(Device, uuid.UUID(device_id))
    except ValueError:
        device = None
    if device is None or device.revoked_at is not None:
        raise SignInRequestInvalid(
            _(
                "This computer is not connected to the campus server (or was disconnected by "
                "an administrator), so it cannot sign you in this way."
            )
        )
    return device


def check_authorize_request(
    db: Session,
    *,
    device_id: str,
    redirect_uri: str,
    code_challenge: str,
    code_challenge_method: str,
    state: str,
) -> Device:
    """The device of a loopback request whose every part is valid; else SignInRequestInvalid."""
    loopback_redirect_uri(redirect_uri)
    if code_challenge_method != "S256" or not _CHALLENGE.match(code_challenge):
        raise SignInRequestInvalid(
            _(
                "This sign-in link is incomplete (no valid PKCE challenge). Start the sign-in "
                "again from Campus Portal."
            )
        )
    if not state or len(state) > 200:
        raise SignInRequestInvalid(
            _(
                "This sign-in link is incomplete (no state). Start the sign-in again from "
                "Campus Portal."
            )
        )
    return sign_in_device(db, device_id)


def join_refusal(db: Session, device: Device, user: User) -> str:
    """Why `user` may not sign in on `device` ("" when they may): the rules of a first sign-in
    with a password (enrolment.add_account)."""
    if not user.is_active:
        return _("This account has been deactivated. Ask an administrator.")
    try:
        enrolment.check_may_join(db, device, user)
    except PortalError as error:
        return str(error)
    return ""


def issue_loopback_code(
    db: Session,
    device: Device,
    user: User,
    *,
    code_challenge: str,
    redirect_uri: str,
    now: datetime,
) -> str:
    """The one-time code for the copy, after the person confirmed on the authorize page."""
    grant = DeviceSignInGrant(
        code_challenge=code_challenge, redirect_uri=redirect_uri, user_id=user.id, status="approved"
    )
    return _issue(db, grant, LOOPBACK, device, lasts=LOOPBACK_CODE_SECONDS, now=now)


def _issue(
    db: Session, grant: DeviceSignInGrant, kind: str, device: Device, *, lasts: int, now: datetime
) -> str:
    """Store `grant`, of `kind` for `device`, good for `lasts` seconds, under a new code, which
    is returned and never stored (the grant keeps its digest)."""
    code = secrets.token_urlsafe(32)
    grant.kind, grant.device_id, grant.code_hash = kind, device.id, _digest(code)
    grant.expires_at = now + timedelta(seconds=lasts)
    db.add(grant)
    db.flush()
    return code


def _invalid(message: str = "") -> GrantRefused:
    return GrantRefused(
        "invalid_grant",
        message
        or _(
            "The sign-in code is not valid (already used, expired, or not for this "
            "computer). Start the sign-in again."
        ),
    )


def _take(db: Session, grant: DeviceSignInGrant, from_status: str) -> None:
    """The grant is used, by one conditional UPDATE: a second exchange finds it taken."""
    if not enrolment.took_one(
        db,
        update(DeviceSignInGrant)
        .where(DeviceSignInGrant.id == grant.id, DeviceSignInGrant.status == from_status)
        .values(status="used"),
    ):
        raise _invalid()


def _signed_in(db: Session, device: Device, grant: DeviceSignInGrant, now: datetime) -> User:
    """The account of an exchanged grant joins the device (refused when it may not)."""
    user = db.get(User, grant.user_id) if grant.user_id else None
    if user is None:
        raise _invalid()
    if refusal := join_refusal(db, device, user):
        raise GrantRefused("access_denied", refusal)
    enrolment.join_device(db, device, user, now=now)
    user.last_login_at = now
    from portal.audit.services import record

    record(
        db,
        user,
        "auth.device_sign_in",
        entity_type="device",
        entity_id=device.id,
        summary=f"{user.username} signed in on device {device.name} through the campus server",
        after={"flow": grant.kind, "account_source": user.account_source},
    )
    return user


def redeem_loopback_code(
    db: Session, device: Device, *, code: str, verifier: str, redirect_uri: str, now: datetime
) -> User:
    """The account a loopback code was issued for, once: bound to this device, its challenge
    (the verifier must hash to it) and its address; expired after LOOPBACK_CODE_SECONDS."""
    grant = db.scalar(
        select(DeviceSignInGrant).where(
            DeviceSignInGrant.code_hash == _digest(code or ""),
            DeviceSignInGrant.kind == LOOPBACK,
        )
    )
    if grant is None or grant.device_id != device.id or grant.status != "approved":
        raise _invalid()
    if grant.expires_at <= now:
        raise _invalid(_("The sign-in code has expired. Start the sign-in again."))
    if not _VERIFIER.match(verifier or "") or not hmac.compare_digest(
        s256(verifier), grant.code_challenge
    ):
        raise _invalid()
    if redirect_uri != grant.redirect_uri:
        raise _invalid()
    _take(db, grant, "approved")
    return _signed_in(db, device, grant, now)


# --- Device code (RFC 8628) --------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


def normalise_user_code(value: str) -> str:
    """The letters of a typed user code, upper case ("bcdf-ghjk" -> "BCDFGHJK")."""
    return "".join(ch for ch in value.upper() if ch.isalpha())


def start_device_authorization(
    db: Session, device: Device, *, now: datetime
) -> DeviceAuthorization:
    """A new code pair for `device`: the device code it polls with, the user code shown."""
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _position in range(8))
    grant = DeviceSignInGrant(
        user_code_hash=_digest(raw), status="pending", interval_seconds=POLL_SECONDS
    )
    device_code = _issue(db, grant, DEVICE, device, lasts=DEVICE_CODE_SECONDS, now=now)
    return DeviceAuthorization(
        device_code, f"{raw[:4]}-{raw[4:]}", DEVICE_CODE_SECONDS, POLL_SECONDS
    )


def pending_device_grant(db: Session, user_code: str, *, now: datetime) -> DeviceSignInGrant:
    """The waiting request of a user code typed on the /device page; ValidationError when
    there is none (mistyped, expired, already answered)."""
    letters = normalise_user_code(user_code)
    grant = None
    if len(letters) == 8:
        grant = db.scalar(
            select(DeviceSignInGrant).where(
                DeviceSignInGrant.user_code_hash == _digest(letters),
                DeviceSignInGrant.kind == DEVICE,
            )
        )
    if grant is None or grant.status != "pending":
        raise ValidationError(
            _(
                "That code is not known or was already used. Check the code Campus Portal "
                "shows on the computer and type it again."
            )
        )
    if grant.expires_at <= now:
        raise ValidationError(
            _("That code has expired. On the computer, start the sign-in again for a new code.")
        )
    return grant


def decide_device_grant(
    db: Session, grant: DeviceSignInGrant, user: User, *, approve: bool, now: datetime
) -> None:
    """The person signed in on the server confirms (or refuses) the sign-in on the device."""
    if grant.expires_at <= now:
        raise ValidationError(
            _("That code has expired. On the computer, start the sign-in again for a new code.")
        )
    if not enrolment.took_one(
        db,
        update(DeviceSignInGrant)
        .where(DeviceSignInGrant.id == grant.id, DeviceSignInGrant.status == "pending")
        .values(status="approved" if approve else "denied", user_id=user.id),
    ):
        raise ValidationError(_("That code was already used."))


def poll_device_code(db: Session, device: Device, device_code: str, *, now: datetime) -> User:
    """The account once the person confirmed; else GrantRefused with authorization_pending,
    slow_down (polled sooner than the interval: it grows by 5 s), expired_token,
    access_denied or invalid_grant."""
    grant = db.scalar(
        select(DeviceSignInGrant)
        .where(
            DeviceSignInGrant.code_hash == _digest(device_code or ""),
            DeviceSignInGrant.kind == DEVICE,
        )
        .execution_options(populate_existing=True)  # as decided, whoever decided it
    )
    if grant is None or grant.device_id != device.id or grant.status == "used":
        raise _invalid()
    if grant.expires_at <= now:
        raise GrantRefused(
            "expired_token", _("The code has expired. Start the sign-in again for a new code.")
        )
    too_soon = grant.polled_at is not None and now - grant.polled_at < timedelta(
        seconds=grant.interval_seconds
    )
    grant.polled_at = now
    if grant.status == "denied":
        raise GrantRefused("access_denied", _("The sign-in was refused on the other device."))
    if grant.status == "pending":
        if too_soon:
            grant.interval_seconds += 5
            raise GrantRefused("slow_down", _("Waiting for the code to be confirmed."))
        raise GrantRefused("authorization_pending", _("Waiting for the code to be confirmed."))
    _take(db, grant, "approved")
    return _signed_in(db, device, grant, now)
