"""The signed-in user's profile page: their account and their personal API tokens."""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import refresh
from werkzeug.wrappers import Response

from portal.auth.policy import signed_in
from portal.errors import ValidationError
from portal.models import utcnow
from portal.profile import services
from portal.profile.forms import LanguageForm, TokenForm
from portal.web import db_session, signed_in_user

bp = Blueprint("profile", __name__, url_prefix="/profile")


def _page(
    form: TokenForm,
    new_token: services.NewToken | None = None,
    status: int = 200,
    language_form: LanguageForm | None = None,
) -> tuple[str, int]:
    user = signed_in_user()
    tokens = services.tokens_of(db_session(), user)
    if language_form is None:
        language_form = LanguageForm(formdata=None, language=user.language or "")
    page = render_template(
        "profile/index.html",
        form=form,
        language_form=language_form,
        tokens=tokens,
        new_token=new_token,
        now=utcnow(),
    )
    return page, status


@bp.get("/")
@signed_in
def index() -> tuple[str, int]:
    return _page(TokenForm(formdata=None))


@bp.post("/language")
@signed_in
def choose_language() -> Response | tuple[str, int]:
    """The person's language, kept with their account (it travels to their desktop copies)."""
    form = LanguageForm()
    if not form.validate_on_submit():
        return _page(TokenForm(formdata=None), status=422, language_form=form)
    services.set_language(db_session(), signed_in_user(), form.language.data or None)
    db_session().commit()
    refresh()  # the message below is in the language just chosen
    flash(_("Your language is saved."), "success")
    return redirect(url_for("profile.index"))


@bp.post("/tokens")
@signed_in
def create_token() -> tuple[str, int]:
    """The new token is shown on this answer only (no redirect: it is never stored)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    days = None if form.expires.data == "never" else int(form.expires.data or 90)
    try:
        created = services.create_token(
            db_session(), signed_in_user(), form.name.data or "", expires_in_days=days, now=utcnow()
        )
    except ValidationError as error:
        db_session().rollback()
        form.form_errors.append(str(error))
        return _page(form, status=422)
    db_session().commit()
    return _page(TokenForm(formdata=None), new_token=created, status=201)


@bp.post("/tokens/<uuid:token_id>/revoke")
@signed_in
def revoke_token(token_id: uuid.UUID) -> Response:
    token = services.revoke_token(db_session(), signed_in_user(), token_id, now=utcnow())
    db_session().commit()
    flash(_("The token %(name)s is revoked: it no longer works.", name=repr(token.name)), "success")
    return redirect(url_for("profile.index"))
