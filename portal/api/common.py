"""What every API resource module shares: the current user, the session and the clock."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import User, utcnow
from portal.web import signed_in_user


def user() -> User:
    return signed_in_user()


def now() -> datetime:
    return utcnow()


# The request's database session (Flask-SQLAlchemy's scoped session: each call goes to the
# request's own session), typed as the plain Session that the services take.
session = cast(Session, db.session)
