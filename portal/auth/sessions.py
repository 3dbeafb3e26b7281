"""A log-in's end, however the person proved who they are (a password, the directory, single
sign-on, a campus sign-in through the server, an offline PIN): audited the same way, and a
session started fresh."""

from __future__ import annotations

from flask import request, session
from flask_login import login_user

from portal.audit.services import record
from portal.extensions import db
from portal.models import User
from portal.web import db_session


def log_in(user: User, **about: str) -> None:
    """Audit the log-in (`auth.login`: the address, the account's source, then `about`), commit,
    and start a fresh session for `user` (no session fixation)."""
    record(
        db_session(),
        user,
        "auth.login",
        entity_type="user",
        entity_id=user.id,
        summary=f"{user.username} logged in",
        after={"ip": request.remote_addr, "account_source": user.account_source} | about,
    )
    db.session.commit()
    session.clear()
    login_user(user)


def log_in_failed(username: str, summary: str, *, reason: str = "", **about: str) -> None:
    """Undo what the try changed, then audit it (`auth.login_failed`: the name tried, the
    address, `about`, and why where there is a reason) and commit."""
    db.session.rollback()
    after = {"username": username, "ip": request.remote_addr} | about
    record(
        db_session(),
        None,
        "auth.login_failed",
        entity_type="user",
        summary=summary,
        after=after | ({"reason": reason} if reason else {}),
    )
    db.session.commit()
