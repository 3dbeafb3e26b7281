"""First-run rules: when the first administrator may be created, and creating them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.services import UserDetails, create_user
from portal.audit.services import record
from portal.errors import NotFound
from portal.models import User


def has_users(db: Session) -> bool:
    """Any account at all, active or not, deleted or not."""
    return db.scalar(select(User.id).limit(1)) is not None


def first_run_open(db: Session, *, server_url: str) -> bool:
    """The first-run page is offered only to an empty database with no central server set
    (a copy that syncs gets its accounts from the server)."""
    return not server_url and not has_users(db)


def create_first_admin(
    db: Session, *, username: str, full_name: str, email: str, password: str, server_url: str
) -> User:
    """Create the first administrator. Refused (NotFound) once any account exists.

    The caller's transaction must be a write transaction from its first statement (SQLite:
    BEGIN IMMEDIATE, which the portal's engine issues), so that two simultaneous first-run
    submissions cannot both see an empty table.
    """
    if not first_run_open(db, server_url=server_url):
        raise NotFound("This portal is already set up.")
    details = UserDetails(username=username, full_name=full_name, role="admin", email=email)
    admin = create_user(db, details, password)
    record(
        db,
        admin,
        "setup.first_admin",
        entity_type="user",
        entity_id=admin.id,
        summary=f"First administrator {admin.username} created on first run",
        after={"username": admin.username, "role": admin.role},
    )
    return admin
