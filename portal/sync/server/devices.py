"""The administrator's Devices page: devices, their accounts, codes, names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from portal.errors import NotFound, ValidationError
from portal.models import (
    Device,
    DeviceAccount,
    SyncConflict,
    User,
)
from portal.sync.server.enrolment import create_enrolment_code


def devices(db: Session) -> list[tuple[Device, int, int]]:
    """Every device with its open conflicts and its number of accounts, newest first."""
    conflicts = (
        select(func.count(SyncConflict.id))
        .where(SyncConflict.device_id == Device.id, SyncConflict.resolved_at.is_(None))
        .scalar_subquery()
    )
    accounts = select(func.count()).where(DeviceAccount.device_id == Device.id).scalar_subquery()
    return [
        (row[0], row[1], row[2])
        for row in db.execute(
            select(Device, conflicts, accounts).order_by(Device.created_at.desc())
        )
    ]


@dataclass(frozen=True)
class DeviceRow:
    """A line of the Devices page."""

    device: Device
    usernames: list[str]
    open_conflicts: int
    enrolled_for: str  # the person the enrolment code was for: "Sam Student (stud1)"


def device_overview(db: Session) -> list[DeviceRow]:
    """Every device with the person it was enrolled for, the usernames of its accounts and its
    open conflicts, newest first (three queries, whatever the number of devices)."""
    rows = devices(db)
    accounts: dict[uuid.UUID, list[str]] = {}
    people: dict[uuid.UUID, str] = {}
    for device_id, user_id, username, full_name in db.execute(
        select(DeviceAccount.device_id, User.id, User.username, User.full_name)
        .join(User, User.id == DeviceAccount.user_id)
        .order_by(DeviceAccount.added_at, User.username)
    ):
        accounts.setdefault(device_id, []).append(username)
        people[user_id] = f"{full_name} ({username})"
    return [
        DeviceRow(
            device,
            accounts.get(device.id, []),
            conflicts,
            people.get(device.first_user_id, "—"),
        )
        for device, conflicts, _ in rows
    ]


def rename_device(db: Session, device: Device, name: str, *, actor: User) -> None:
    """An administrator names a device as people will recognise it ("Lab B PC 4, Sam")."""
    from portal.audit.services import apply_and_record

    new_name = " ".join(name.split())
    if not new_name:
        raise ValidationError(_("Give the device a name."))
    if len(new_name) > 200:
        raise ValidationError(_("A device name has at most 200 characters."))
    old_name = device.name
    apply_and_record(
        db,
        device,
        {"name": new_name},
        ["name"],
        actor=actor,
        entity_type="device",
        action="sync.device_renamed",
        summary=lambda _changed: f"Renamed device {old_name} to {new_name}",
    )


@dataclass(frozen=True)
class IssuedCode:
    code: str
    username: str
    expires_at: datetime


def enrolment_account(db: Session, username: str) -> User:
    """The account an enrolment code would be for (a lookup that changes nothing, so that the
    form can say "no such account" together with its own problems)."""
    name = username.strip().lower()
    user = db.scalar(select(User).where(User.username == name, User.deleted_at.is_(None)))
    if user is None:
        raise ValidationError(_("There is no account with the username %(name)s.", name=repr(name)))
    return user


def issue_enrolment_code(
    db: Session, username: str, *, actor: User, now: datetime, valid_days: int = 7
) -> IssuedCode:
    """An enrolment code for the account `username`, created by an administrator (audited;
    the code itself is never stored or logged, only shown once)."""
    from portal.audit.services import record

    user = enrolment_account(db, username)
    code = create_enrolment_code(db, user, created_by=actor, now=now, valid_days=valid_days)
    expires_at = now + timedelta(days=valid_days)
    record(
        db,
        actor,
        "sync.enrolment_code_created",
        entity_type="user",
        entity_id=user.id,
        summary=f"Enrolment code for a device of {user.username}, valid for {valid_days} days",
        after={"username": user.username, "expires_at": expires_at.isoformat()},
    )
    return IssuedCode(code, user.username, expires_at)


def get_device(db: Session, device_id: uuid.UUID) -> Device:
    device = db.get(Device, device_id)
    if device is None:
        raise NotFound(_("There is no such device."))
    return device
