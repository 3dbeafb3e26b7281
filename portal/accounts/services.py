"""Accounts: passwords, authentication, and the admin's user management rules."""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from portal.audit.services import apply_and_record, record, snapshot
from portal.errors import FieldErrors, NotFound, OfflineSignInExpired, ValidationError
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
MAX_PASSWORD_LENGTH = 1024
# The longest value of each account field (the database columns' sizes); the forms, the API
# schemas and the CSV importer take their limits from here.
USER_FIELD_MAX_LENGTH = {"username": 64, "full_name": 200, "email": 254, "student_number": 20}
USERNAME_MIN_LENGTH = 2
USERNAME_PATTERN = re.compile(
    rf"^[a-z0-9][a-z0-9._-]{{{USERNAME_MIN_LENGTH - 1},{USER_FIELD_MAX_LENGTH['username'] - 1}}}$"
)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both paths cost the same time.
    Made on first use, not at import: hashing costs a noticeable part of a desktop start."""
    return _hasher.hash("not-a-real-password")


def slow_verifier(secret: str) -> str:
    """The Argon2id verifier of a secret whose rules are checked by its owner (a desktop copy's
    offline PIN: portal/sync/device/sign_in.py), with the passwords' parameters."""
    return _hasher.hash(secret)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            ngettext(
                "Passwords need at least %(num)d character.",
                "Passwords need at least %(num)d characters.",
                MIN_PASSWORD_LENGTH,
            )
        )
    return _hasher.hash(password)


# A few passwords that every guessing list starts with; any password made only of these
# words' letters and digits is refused as well (e.g. "password1", "qwerty12").
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "passw0rd",
        "qwerty",
        "letmein",
        "welcome",
        "iloveyou",
        "abc123",
        "admin",
        "campus",
        "student",
        "monkey",
        "dragon",
        "football",
        "secret",
        "changeme",
    }
)


def password_problems(password: str, *, username: str = "", full_name: str = "") -> list[str]:
    """What makes a new password too weak, as messages a user can act on (empty: it is fine)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(
            _(
                "Use at least %(min_password_length)s characters.",
                min_password_length=MIN_PASSWORD_LENGTH,
            )
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(
            _(
                "Use at most %(max_password_length)s characters.",
                max_password_length=MAX_PASSWORD_LENGTH,
            )
        )
    lowered = password.lower()
    stripped = lowered.rstrip("0123456789!.?")
    if lowered in COMMON_PASSWORDS or stripped in COMMON_PASSWORDS or len(set(lowered)) < 4:
        problems.append(_("That password is too easy to guess: choose a less common one."))
    elif password.isdigit():
        problems.append(_("Use letters as well as digits."))
    names = [username.lower(), *full_name.lower().split()]
    if any(len(name) >= 3 and name in lowered for name in names):
        problems.append(_("Do not use your username or your name in the password."))
    return problems


def authenticate(
    db: Session, username: str, password: str, *, now: datetime, offline_days: int | None = None
) -> User | None:
    """The active user with this username and password, or None; `now` is the log-in time.

    A campus (directory) account is checked here only on a desktop copy (`offline_days`, the
    offline_sign_in_days setting): against the verifier kept from its last online sign-in,
    which it accepts for that many days (then OfflineSignInExpired). The central server asks
    the directory instead (portal/accounts/directory.py)."""
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy_hash(), password)
        return None
    campus = user.account_source != "local"
    if campus and (offline_days is None or user.directory_checked_at is None):
        return None
    if not password_matches(user.password_hash, password):
        return None
    if not user.is_active:
        return None
    if campus and user.directory_checked_at is not None and offline_days is not None:
        if now - user.directory_checked_at > timedelta(days=offline_days):
            raise OfflineSignInExpired(
                ngettext(
                    "Your last online sign-in on this computer was more than %(num)d day ago, "
                    "so it no longer accepts your campus password offline. Connect to the campus "
                    "network (or the internet) and sign in again; after that you can sign in "
                    "here offline for another %(num)d day.",
                    "Your last online sign-in on this computer was more than %(num)d days ago, "
                    "so it no longer accepts your campus password offline. Connect to the campus "
                    "network (or the internet) and sign in again; after that you can sign in "
                    "here offline for another %(num)d days.",
                    offline_days,
                )
            )
        user.last_login_at = now
        return user
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    return user


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass
class UserDetails:
    username: str
    full_name: str
    role: str
    email: str = ""
    student_number: str | None = None


def user_fields(details: UserDetails) -> tuple[dict[str, Any], dict[str, str]]:
    """The cleaned values and the problems of each field, without asking the database."""
    limits = USER_FIELD_MAX_LENGTH
    errors: dict[str, str] = {}
    username = details.username.strip().lower()
    if not USERNAME_PATTERN.match(username):
        errors["username"] = _(
            "%(username)s is not a valid username: %(shortest)s–%(longest)s "
            "lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.",
            username=repr(details.username.strip()),
            shortest=USERNAME_MIN_LENGTH,
            longest=limits["username"],
        )
    if details.role not in ROLES:
        errors["role"] = _(
            "%(role)s is not a role; use one of: %(roles)s.",
            role=repr(details.role),
            roles=", ".join(ROLES),
        )
    full_name = details.full_name.strip()
    if not full_name:
        errors["full_name"] = _("A full name is required.")
    elif len(full_name) > limits["full_name"]:
        errors["full_name"] = _(
            "Full names are at most %(full_name)s characters.", full_name=limits["full_name"]
        )
    email = details.email.strip()
    if email and (len(email) > limits["email"] or "@" not in email.strip("@")):
        errors["email"] = _("%(email)s is not an e-mail address.", email=repr(email))
    number = (details.student_number or "").strip() if details.role == "student" else ""
    if details.role == "student" and not number:
        errors["student_number"] = _("Students need a student number.")
    elif len(number) > limits["student_number"]:
        errors["student_number"] = _(
            "Student numbers are at most %(student_number)s characters.",
            student_number=limits["student_number"],
        )
    values = {
        "username": username,
        "full_name": full_name,
        "role": details.role,
        "email": email,
        "student_number": number or None,
    }
    return values, errors


def _validate(db: Session, details: UserDetails, existing: User | None = None) -> dict[str, Any]:
    """The cleaned values, or every problem of the account at once, each under its form
    field's name."""
    values, errors = user_fields(details)
    if "username" not in errors:
        clash = db.scalar(select(User).where(User.username == values["username"]))
        if clash is not None and clash is not existing:
            errors["username"] = _(
                "The username %(username)s is already taken.", username=repr(values["username"])
            )
    number = values["student_number"]
    if number and "student_number" not in errors:
        clash = db.scalar(select(User).where(User.student_number == number))
        if clash is not None and clash is not existing:
            errors["student_number"] = _(
                "Student number %(number)s is already in use.", number=number
            )
    if errors:
        raise FieldErrors(errors)
    return values


AUDITED_FIELDS = ("username", "full_name", "role", "email", "student_number")


def _account(user: User) -> dict[str, object]:
    return snapshot(user, AUDITED_FIELDS)


def new_account(
    values: dict[str, Any], *, password_hash: str, must_change_password: bool = False
) -> User:
    """An account made of values that `user_fields` cleaned and the database does not clash
    with, and a password already hashed (the CSV importer hashes many at once)."""
    return User(**values, password_hash=password_hash, must_change_password=must_change_password)


def create_user(
    db: Session, details: UserDetails, password: str, *, actor: User | None = None
) -> User:
    """A new account. `actor`: the admin creating it, and the creation is audited; None for
    the command line and the first-run page (which audits the first admin itself)."""
    user = new_account(_validate(db, details), password_hash=hash_password(password))
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


def create_administrator(
    db: Session,
    username: str,
    *,
    full_name: str,
    email: str,
    password: str,
    action: str,
    summary: str,
    by_themselves: bool,
) -> User:
    """An administrator made outside the admin's pages (the command line, the first-run page),
    audited as `action` with `summary` (`{username}`: theirs); `by_themselves`: the entry names
    the new administrator as who did it (the first-run page), else nobody (the command line)."""
    details = UserDetails(username=username, full_name=full_name, role="admin", email=email)
    admin = create_user(db, details, password)
    record(
        db,
        admin if by_themselves else None,
        action,
        entity_type="user",
        entity_id=admin.id,
        summary=summary.format(username=admin.username),
        after={"username": admin.username, "role": admin.role},
    )
    return admin


def update_user(db: Session, user: User, details: UserDetails, *, actor: User) -> User:
    """Save an admin's edit; the audit entry names only the fields that changed."""
    apply_and_record(
        db,
        user,
        _validate(db, details, existing=user),
        AUDITED_FIELDS,
        actor=actor,
        entity_type="user",
        action="account.update",
        summary=lambda new: f"Edited account {user.username}: {', '.join(new)}",
    )
    return user


def set_active(db: Session, user: User, active: bool, *, actor: User, undo: bool = False) -> str:
    """Deactivate or reactivate an account; returns what happened, in words. An Undo (`undo`)
    is refused when the account is already in that state (someone else changed it)."""
    if user.id == actor.id and not active:
        raise ValidationError(_("You cannot deactivate your own account."))
    if undo and user.active == active:
        raise ValidationError(
            _(
                "Nothing to undo: the account %(username)s is already active.",
                username=user.username,
            )
            if active
            else _(
                "Nothing to undo: the account %(username)s is already deactivated.",
                username=user.username,
            )
        )
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
    """An administrator sets a one-time password: the user's sessions end, and a new password
    must be chosen at the next log-in."""
    if user.account_source != "local":
        raise ValidationError(
            _(
                "%(username)s signs in with a campus password, which the campus directory keeps: "
                "it cannot be reset here (deactivating the account still works).",
                username=user.username,
            )
        )
    user.password_hash = hash_password(new_password)
    user.must_change_password = True
    user.session_version += 1
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


CHANGED_ON_CAMPUS = _l(
    "This account signs in with a campus password: change it where you manage your campus "
    "account, not here."
)


def change_password(db: Session, user: User, current_password: str, new_password: str) -> User:
    """The user's own change: the current password must be right, the new one strong and
    different. Every other session of the user ends (their session version is raised)."""
    if user.account_source != "local":
        raise ValidationError(CHANGED_ON_CAMPUS)
    try:
        _hasher.verify(user.password_hash, current_password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise ValidationError(_("The current password is not right.")) from None
    if new_password == current_password:
        raise ValidationError(_("The new password must differ from the current one."))
    problems = password_problems(new_password, username=user.username, full_name=user.full_name)
    if problems:
        raise ValidationError(" ".join(problems))
    user.password_hash = _hasher.hash(new_password)
    user.must_change_password = False
    user.session_version += 1
    db.flush()
    record(
        db,
        user,
        "account.password_change",
        entity_type="user",
        entity_id=user.id,
        summary=f"{user.username} changed their password",
    )
    return user


def get_user(db: Session, user_id: uuid.UUID) -> User:
    user = db.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound(_("No such user."))
    return user


def search_users_query(text: str = "", role: str = "") -> Select[User]:
    """A select of users matching the admin list's filters, ordered for paging."""
    query = select(User).where(User.deleted_at.is_(None))
    if role:
        query = query.where(User.role == role)
    if text:
        # contains(autoescape): "%" and "_" typed in a search match themselves
        like = text.strip().lower()
        query = query.where(
            or_(
                func.lower(User.username).contains(like, autoescape=True),
                func.lower(User.full_name).contains(like, autoescape=True),
                User.student_number.contains(like, autoescape=True),
            )
        )
    return query.order_by(User.username)
