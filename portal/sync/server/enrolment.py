"""The server's side of enrolment: codes, device credentials, accounts of a device, revocation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask_babel import gettext as _
from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from portal.errors import Forbidden, PortalError, ValidationError
from portal.models import (
    Device,
    DeviceAccount,
    EnrolmentCode,
    User,
)
from portal.sync.protocol import CODE_ALPHABET, DEVICE_REVOKED, normalise_code


class DeviceRefused(PortalError):
    """The device may not call the server (unknown credential, revoked)."""

    status_code = 403


class DeviceRevoked(DeviceRefused):
    problem_type = DEVICE_REVOKED


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_enrolment_code(
    db: Session, user: User, *, created_by: User | None, now: datetime, valid_days: int = 7
) -> str:
    """A new single-use code for enrolling one device for `user`; only its hash is kept."""
    if not user.is_active:
        raise ValidationError(
            _("%(username)s is deactivated: no device can be enrolled.", username=user.username)
        )
    if not 1 <= valid_days <= 90:
        raise ValidationError(_("A code is valid for 1 to 90 days."))
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    db.add(
        EnrolmentCode(
            code_hash=_digest(normalise_code(code)),
            user_id=user.id,
            created_by_id=created_by.id if created_by else None,
            expires_at=now + timedelta(days=valid_days),
        )
    )
    db.flush()
    return code


@dataclass(frozen=True)
class Enrolment:
    device: Device
    token: str
    user: User


def _known_code(db: Session, code: str) -> EnrolmentCode:
    """The enrolment code as typed (in any case, with or without its dashes)."""
    digest = _digest(normalise_code(code))
    found = db.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == digest))
    if found is None:
        raise ValidationError(
            _("That enrolment code is not known. Check it, or ask for a new one.")
        )
    return found


def _account_of(db: Session, found: EnrolmentCode, now: datetime) -> User:
    """The account a code enrols, when the code can be used now: not used yet, not expired,
    and the account active."""
    if found.used_at is not None:
        raise ValidationError(_("That enrolment code was already used. Ask for a new one."))
    if found.expires_at <= now:
        raise ValidationError(_("That enrolment code has expired. Ask for a new one."))
    user = db.get(User, found.user_id)
    if user is None or not user.is_active:
        raise ValidationError(_("The account of that code is deactivated."))
    return user


def _take_code(db: Session, found: EnrolmentCode, device: Device, now: datetime) -> None:
    """The code is taken by a conditional UPDATE: two devices racing for it cannot both win."""
    if not took_one(
        db,
        update(EnrolmentCode)
        .where(EnrolmentCode.id == found.id, EnrolmentCode.used_at.is_(None))
        .values(used_at=now, device_id=device.id),
    ):
        raise ValidationError(_("That enrolment code was already used. Ask for a new one."))


def enrol_device(
    db: Session, code: str, *, name: str, app_version: str, now: datetime, os_name: str = ""
) -> Enrolment:
    """Use a code (once) to create a device credential for the code's account. `name` is the
    one the copy chose (an administrator can change it); `os_name` its operating system."""
    found = _known_code(db, code)
    user = _account_of(db, found, now)
    token = secrets.token_urlsafe(32)
    device = Device(
        name=name.strip()[:200] or "device",
        credential_hash=_digest(token),
        first_user_id=user.id,
        app_version=app_version[:40],
        os_name=os_name.strip()[:100],
        last_seen_at=now,
    )
    db.add(device)
    db.flush()
    _take_code(db, found, device, now)
    db.add(DeviceAccount(device_id=device.id, user_id=user.id, added_at=now))
    db.flush()
    return Enrolment(device, token, user)


def enrol_again(
    db: Session, code: str, credential: str, new_credential: str, *, app_version: str, now: datetime
) -> Enrolment:
    """A revoked device comes back with a new code: the same device (its accounts, its cursor,
    the changes it already pushed) under a new credential that it chose (`new_credential`,
    derived from its old one and the code). Its waiting changes then go through push as any
    others, each re-checked as its author.

    The code must be for one of the device's accounts. A retry whose first answer was lost
    (the device still holds its old credential; the server already took the new one) gets the
    same answer again."""
    if len(new_credential) < 32 or len(new_credential) > 200:
        raise ValidationError(_("The new device credential must be 32 to 200 characters."))
    found = _known_code(db, code)
    device = db.scalar(select(Device).where(Device.credential_hash == _digest(credential)))
    if device is None:
        again = db.scalar(select(Device).where(Device.credential_hash == _digest(new_credential)))
        user = db.get(User, found.user_id)
        if again is not None and found.device_id == again.id and user is not None:
            return Enrolment(again, new_credential, user)  # the first answer was lost
        raise ValidationError(
            _(
                "This computer is not known to the campus server: connect a new data folder "
                "(--data-dir) instead."
            )
        )
    if device.revoked_at is None:
        raise ValidationError(
            _(
                "This computer is still connected to the campus server (it was not revoked): "
                "there is nothing to enrol again; sync it instead (campus-portal sync)."
            )
        )
    user = _account_of(db, found, now)
    if db.get(DeviceAccount, (device.id, user.id)) is None:
        raise ValidationError(
            _(
                "That code is for %(username)s, who has not used this computer: ask for a code "
                "for one of the accounts of this computer.",
                username=user.username,
            )
        )
    _take_code(db, found, device, now)
    from portal.audit.services import record

    revoked_at = device.revoked_at
    device.credential_hash = _digest(new_credential)
    device.revoked_at = None
    device.revoked_by_id = None
    device.app_version = app_version[:40] or device.app_version
    device.last_seen_at = now
    record(
        db,
        user,
        "sync.device_enrolled_again",
        entity_type="device",
        entity_id=device.id,
        summary=(
            f"Enrolled device {device.name} again for {user.username} (revoked "
            f"{revoked_at:%Y-%m-%d %H:%M} UTC)"
        ),
    )
    db.flush()
    return Enrolment(device, new_credential, user)


def authenticate_device(db: Session, token: str, *, now: datetime, seen: bool = True) -> Device:
    """The device signing with `token`; raises DeviceRefused (unknown or revoked). `seen`:
    its last contact is now (False for a call that only reads, such as a file download)."""
    device = db.scalar(select(Device).where(Device.credential_hash == _digest(token or "")))
    if device is None:
        raise DeviceRefused(_("This device is not enrolled with the campus server."))
    if device.revoked_at is not None:
        raise DeviceRevoked(
            _(
                "This device was revoked by an administrator and can no longer sync. Its unsent "
                "changes are kept on it: with a new enrolment code from an administrator it can "
                "be enrolled again and send them (campus-portal enrol), or they can be exported "
                "(campus-portal sync --export FILE)."
            )
        )
    if seen:
        device.last_seen_at = now
    return device


def device_accounts(db: Session, device: Device | uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """(id, role) of the device's accounts that are still active."""
    device_id = device if isinstance(device, uuid.UUID) else device.id
    rows = db.execute(
        select(User.id, User.role)
        .join(DeviceAccount, DeviceAccount.user_id == User.id)
        .where(
            DeviceAccount.device_id == device_id, User.active.is_(True), User.deleted_at.is_(None)
        )
        .order_by(User.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def add_account(
    db: Session,
    device: Device,
    username: str,
    password: str,
    *,
    now: datetime,
    settings: dict[str, Any] | None = None,
) -> User:
    """A person signs in on the device for the first time (online): their account joins it.
    With the server's `settings`, a campus account's password is checked by the directory."""
    from portal.accounts.services import authenticate, password_matches

    user = authenticate(db, username, password, now=now)
    if user is None and settings is not None and "ldap" in settings["SIGN_IN_METHODS"]:
        from portal.accounts.directory import sign_in_with_password  # ldap3: server only

        user = sign_in_with_password(db, settings, username, password, now=now)
    if user is None:
        known = db.scalar(select(User).where(User.username == username.strip().lower()))
        if (
            known is not None
            and not known.active
            and known.deleted_at is None
            and password_matches(known.password_hash, password)
        ):  # the right password: the person is told why the account no longer signs in
            raise Forbidden(_("This account has been deactivated. Ask an administrator."))
        raise Forbidden(_("Wrong username or password."))
    join_device(db, device, user, now=now)
    return user


def check_may_join(db: Session, device: Device, user: User) -> None:
    """Raises Forbidden when `user` may not sign in on `device`: a student's account only on
    a device enrolled for that student, and nobody else on a student's device."""
    if user.id == device.first_user_id:
        return
    first = db.get(User, device.first_user_id)
    if user.role == "student":
        raise Forbidden(
            _("A student's account can only be used on a device enrolled for that student.")
        )
    if first is not None and first.role == "student":
        raise Forbidden(_("This device was enrolled for a student: other accounts cannot join it."))


def join_device(db: Session, device: Device, user: User, *, now: datetime) -> None:
    """`user` becomes one of the device's accounts (its next sync brings their data), when
    check_may_join lets them."""
    check_may_join(db, device, user)
    if user.id == device.first_user_id:
        return
    exists = db.get(DeviceAccount, (device.id, user.id))
    if exists is None:
        db.add(DeviceAccount(device_id=device.id, user_id=user.id, added_at=now))
        db.flush()


def revoke_device(db: Session, device: Device, *, actor: User, now: datetime) -> None:
    from portal.audit.services import record

    if device.revoked_at is not None:
        raise ValidationError(_("That device is already revoked."))
    device.revoked_at = now
    device.revoked_by_id = actor.id
    record(
        db,
        actor,
        "sync.device_revoked",
        entity_type="device",
        entity_id=device.id,
        summary=f"Revoked device {device.name}",
    )


def took_one(db: Session, statement: Any) -> bool:
    """Runs a conditional UPDATE that takes one row (a code, a grant); False when another
    request took it first (no row matched any more)."""
    result = db.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount == 1
