"""The signed-in user's profile page: their account and their personal API tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.policy import signed_in
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import User
from portal.profile import services
from portal.profile.forms import TokenForm

bp = Blueprint("profile", __name__, url_prefix="/profile")


def _user() -> User:
    return cast(User, current_user._get_current_object())  # type: ignore[attr-defined]


def _page(form: TokenForm, new_token: services.NewToken | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    tokens = services.tokens_of(db.session, _user())
    page = render_template(
        "profile/index.html",
        form=form,
        tokens=tokens,
        new_token=new_token,
        now=datetime.now(UTC),
    )
    return page, status


@bp.get("/")
@signed_in
def index():  # type: ignore[no-untyped-def]
    return _page(TokenForm(formdata=None))


@bp.post("/tokens")
@signed_in
def create_token():  # type: ignore[no-untyped-def]
    """The new token is shown on this answer only (no redirect: it is never stored)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    days = None if form.expires.data == "never" else int(form.expires.data or 90)
    try:
        created = services.create_token(
            db.session, _user(), form.name.data or "", expires_in_days=days, now=datetime.now(UTC)
        )
    except ValidationError as error:
        db.session.rollback()
        form.form_errors.append(str(error))
        return _page(form, status=422)
    db.session.commit()
    return _page(TokenForm(formdata=None), new_token=created, status=201)


@bp.post("/tokens/<uuid:token_id>/revoke")
@signed_in
def revoke_token(token_id: uuid.UUID) -> Response:
    token = services.revoke_token(db.session, _user(), token_id, now=datetime.now(UTC))
    db.session.commit()
    flash(f"The token {token.name!r} is revoked: it no longer works.", "success")
    return redirect(url_for("profile.index"))
