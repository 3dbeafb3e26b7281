"""First-run rules: when the first-run page is open, when a local first administrator may be
created, and creating them (connecting to a campus server is portal.sync.device's)."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.services import create_administrator
from portal.errors import NotFound
from portal.models import SyncState, User

# These two read the tables, not through the ORM: they run before the log-in page (the first
# page of every start), which then needs no ORM mapper set up.


def has_users(db: Session) -> bool:
    """Any account at all, active or not, deleted or not."""
    return db.scalar(select(User.__table__.c.id).limit(1)) is not None


def is_connected(db: Session) -> bool:
    """Whether this copy is enrolled with a campus server."""
    return db.scalar(select(SyncState.__table__.c.id).limit(1)) is not None


def first_run_open(db: Session) -> bool:
    """The first-run page is offered to an empty database that is not connected to a campus
    server yet (a connected copy gets its accounts from the server)."""
    return not has_users(db) and not is_connected(db)


def local_admin_allowed(db: Session, *, server_url: str) -> bool:
    """A local first administrator only where IT set no campus server: a copy meant to sync
    connects instead (its data folder could not join the server once it holds accounts)."""
    return not server_url and first_run_open(db)


def create_first_admin(
    db: Session, *, username: str, full_name: str, email: str, password: str, server_url: str
) -> User:
    """Create the first administrator. Refused (NotFound) once any account exists.

    The caller's transaction must be a write transaction from its first statement (SQLite:
    BEGIN IMMEDIATE, which the portal's engine issues), so that two simultaneous first-run
    submissions cannot both see an empty table.
    """
    if not local_admin_allowed(db, server_url=server_url):
        raise NotFound(_("This portal is already set up."))
    return create_administrator(
        db,
        username,
        full_name=full_name,
        email=email,
        password=password,
        action="setup.first_admin",
        summary="First administrator {username} created on first run",
        by_themselves=True,
    )
