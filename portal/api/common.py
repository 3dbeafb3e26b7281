"""What every API resource module shares: the current user and the clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from flask_login import current_user
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import User


def user() -> User:
    return cast(User, current_user._get_current_object())  # type: ignore[attr-defined]


def now() -> datetime:
    return datetime.now(UTC)


# The request's database session (Flask-SQLAlchemy's scoped session), typed as the plain Session
# that the services take.
session = cast(Session, db.session)
