"""Accounts: passwords, authentication, and the admin's user management rules."""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from portal.audit.services import apply_and_record, record, snapshot
from portal.errors import NotFound, ValidationError
from portal.models import ROLES, User

# Argon2id with OWASP's recommended minimum (Password Storage Cheat Sheet): 19 MiB of memory,
# 2 passes, 1 lane. argon2-cffi's defaults (64 MiB, 3 passes, 4 lanes) cost about 140 ms of CPU
# per log-in on a 2-core server, which let a log-in storm at 8 a.m. starve every other request;
# these cost a fraction of that and remain strong against offline guessing. A stored hash made
# with other parameters is re-made with these at the user's next successful log-in
# (check_needs_rehash in `authenticate`).
PASSWORD_HASH_PARAMETERS: dict[str, Any] = {
    "time_cost": 2,
    "memory_cost": 19 * 1024,
    "parallelism": 1,
}
_hasher = PasswordHasher(**PASSWORD_HASH_PARAMETERS)
MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both paths cost the same time.
    Made on first use, not at import: hashing costs a noticeable part of a desktop start."""
    return _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def authenticate(db: Session, username: str, password: str, *, now: datetime) -> User | None:
    """The active user with this username and password, or None; `now` is the log-in time."""
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy_hash(), password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    return user


@dataclass
class UserDetails:
    username: str
    full_name: str
    role: str
    email: str = ""
    student_number: str | None = None


def _validate(db: Session, details: UserDetails, existing: User | None = None) -> None:
    username = details.username.strip().lower()
    if not USERNAME_PATTERN.match(username):
        raise ValidationError(
            "Usernames are 2–64 characters: lower-case letters, digits, '.', '_' or '-'."
        )
    if details.role not in ROLES:
        raise ValidationError(f"Unknown role {details.role!r}.")
    if not details.full_name.strip():
        raise ValidationError("A full name is required.")
    clash = db.scalar(select(User).where(User.username == username))
    if clash is not None and clash is not existing:
        raise ValidationError(f"The username {username!r} is already taken.")
    if details.role == "student" and not details.student_number:
        raise ValidationError("Students need a student number.")
    if details.student_number:
        clash = db.scalar(select(User).where(User.student_number == details.student_number))
        if clash is not None and clash is not existing:
            raise ValidationError(f"Student number {details.student_number} is already in use.")


AUDITED_FIELDS = ("username", "full_name", "role", "email", "student_number")


def _account(user: User) -> dict[str, object]:
    return snapshot(user, AUDITED_FIELDS)


def _cleaned(details: UserDetails) -> dict[str, object]:
    return {
        "username": details.username.strip().lower(),
        "full_name": details.full_name.strip(),
        "role": details.role,
        "email": details.email.strip(),
        "student_number": (details.student_number or None) if details.role == "student" else None,
    }


def create_user(
    db: Session, details: UserDetails, password: str, *, actor: User | None = None
) -> User:
    """A new account. `actor`: the admin creating it, and the creation is audited; None for
    the command line and the first-run page (which audits the first admin itself)."""
    _validate(db, details)
    user = User(**_cleaned(details), password_hash=hash_password(password))
    db.add(user)
    db.flush()
    if actor is not None:
        record(
            db,
            actor,
            "account.create",
            entity_type="user",
            entity_id=user.id,
            summary=f"Created account {user.username} ({user.role})",
            after=_account(user),
        )
    return user


def update_user(db: Session, user: User, details: UserDetails, *, actor: User) -> User:
    """Save an admin's edit; the audit entry names only the fields that changed."""
    _validate(db, details, existing=user)
    apply_and_record(
        db,
        user,
        _cleaned(details),
        AUDITED_FIELDS,
        actor=actor,
        entity_type="user",
        action="account.update",
        summary=lambda new: f"Edited account {user.username}: {', '.join(new)}",
    )
    return user


def set_active(db: Session, user: User, active: bool, *, actor: User) -> str:
    """Deactivate or reactivate an account; returns what happened, in words."""
    if user.id == actor.id and not active:
        raise ValidationError("You cannot deactivate your own account.")
    user.active = active
    db.flush()
    state = "reactivated" if active else "deactivated"
    record(
        db,
        actor,
        "account.activate" if active else "account.deactivate",
        entity_type="user",
        entity_id=user.id,
        summary=f"Account {user.username} {state}",
        after={"active": active},
    )
    return state


def reset_password(db: Session, user: User, new_password: str, *, actor: User) -> User:
    user.password_hash = hash_password(new_password)
    db.flush()
    record(
        db,
        actor,
        "account.password_reset",
        entity_type="user",
        entity_id=user.id,
        summary=f"Password of {user.username} reset by an administrator",
    )
    return user


def get_user(db: Session, user_id: uuid.UUID) -> User:
    user = db.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("No such user.")
    return user


def search_users_query(text: str = "", role: str = "") -> Select[User]:
    """A select of users matching the admin list's filters, ordered for paging."""
    query = select(User).where(User.deleted_at.is_(None))
    if role:
        query = query.where(User.role == role)
    if text:
        like = f"%{text.strip().lower()}%"
        query = query.where(
            or_(
                func.lower(User.username).like(like),
                func.lower(User.full_name).like(like),
                User.student_number.like(like),
            )
        )
    return query.order_by(User.username)
