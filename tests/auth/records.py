"""What a sign-in left in the database, read back detached from the session (the campus
sign-in tests: tests/auth/test_directory_sign_in.py, test_single_sign_on.py)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry, User


def account(app: Flask, username: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        if user is not None:
            db.session.expunge(user)
        return user


def audit(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        for entry in entries:
            db.session.expunge(entry)
        return entries
