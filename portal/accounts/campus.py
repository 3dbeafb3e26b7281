"""Campus accounts: the portal account of a person the campus vouched for, whichever way it did
(the directory, portal/accounts/directory.py; single sign-on, portal/auth/single_sign_on.py).

The first campus sign-in creates the account (just in time); every later one brings the name,
e-mail and role up to date from the campus's groups (the highest mapped role wins; in no mapped
group: student, or refused where `student` has a group of its own). The account's
`account_source` says which way it signs in, and it signs in that way only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.audit.services import record
from portal.errors import PortalError
from portal.models import ROLES, User

LDAP = "ldap"
OIDC = "oidc"
CAMPUS_SOURCES = (LDAP, OIDC)
NO_PASSWORD = "!"  # noqa: S105 - an account whose password is checked elsewhere
WHERE = {LDAP: "the campus directory", OIDC: "the campus sign-in"}  # audit summaries


class CampusRefused(PortalError):
    """The campus knows the person, but the portal may not let them in (no role, another
    account of that name, deactivated here)."""

    status_code = 403


@dataclass(frozen=True)
class CampusPerson:
    """What the campus says about a person who signed in."""

    username: str
    full_name: str
    email: str
    role: str | None  # None: in no group that gives a role here, and `student` has one


def highest_role(held: Iterable[str], group_roles: dict[str, str]) -> str | None:
    """The highest of the roles held (ROLES runs from the lowest to the highest); with none:
    student, unless `student` has a group of its own (then only members get in)."""
    held = list(held)
    if held:
        return max(held, key=ROLES.index)
    return None if "student" in group_roles else "student"


def role_from_groups(groups: Iterable[str], group_roles: dict[str, str]) -> str | None:
    """The role of a person whose groups are `groups` (the values the campus gives), by the
    table role → group (`ldap_group_roles`, `oidc_group_roles`)."""
    have = set(groups)
    return highest_role([role for role, group in group_roles.items() if group in have], group_roles)


def sign_in(db: Session, person: CampusPerson, source: str, *, now: datetime) -> User:
    """The portal account of a person the campus accepted (by `source`, "ldap" or "oidc"):
    created at the first sign-in, brought up to date at every later one, each change in the
    audit log. Raises CampusRefused when the person has no role here, the name belongs to an
    account that signs in another way, or the account is deactivated."""
    user = db.scalar(select(User).where(User.username == person.username))
    if person.role is None:
        raise CampusRefused(
            _(
                "Your campus account is not in a group that may use the portal. "
                "Ask the IT service desk to add you."
            )
        )
    if user is None:
        user = User(
            username=person.username,
            full_name=person.full_name,
            email=person.email,
            role=person.role,
            password_hash=NO_PASSWORD,
            account_source=source,
        )
        db.add(user)
        db.flush()
        record(
            db,
            user,
            "account.directory_create",
            entity_type="user",
            entity_id=user.id,
            summary=f"{user.username} signed in with a campus account for the first time "
            f"({WHERE[source]})",
            after={"full_name": user.full_name, "email": user.email, "role": user.role},
        )
    elif user.account_source != source:
        if user.account_source == "local":
            raise CampusRefused(
                _(
                    "The portal has a local account named %(username)s; it cannot be used "
                    "with a campus sign-in. Sign in with its own password, or ask an "
                    "administrator.",
                    username=person.username,
                )
            )
        raise CampusRefused(
            _(
                "The portal account %(username)s signs in the other campus way (the log-in "
                "form's username and password, or the campus sign-in button). Use that one, "
                "or ask an administrator.",
                username=person.username,
            )
        )
    else:
        fresh = {"full_name": person.full_name, "email": person.email, "role": person.role}
        before = {key: getattr(user, key) for key in fresh if getattr(user, key) != fresh[key]}
        if before:
            for key in before:
                setattr(user, key, fresh[key])
            record(
                db,
                user,
                "account.directory_update",
                entity_type="user",
                entity_id=user.id,
                summary=f"{user.username}'s details were updated from {WHERE[source]}",
                before=before,
                after={key: fresh[key] for key in before},
            )
    if not user.is_active:
        raise CampusRefused(
            _("This account has been deactivated in the portal. Ask an administrator.")
        )
    user.directory_checked_at = now
    user.last_login_at = now
    return user
