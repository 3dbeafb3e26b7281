"""What every feature's routes share: the signed-in user, typed, and one route shape.

The shape "call the service; on a domain error roll back and show it; else commit, flash and
redirect" is written once, here (`commit_or_show`); `attempt` is its core, for routes that show
the outcome in place (htmx answers) instead of redirecting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

from flask import flash, redirect
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from portal.errors import Forbidden, NotFound, PortalError
from portal.extensions import db
from portal.models import User

T = TypeVar("T")
# What to flash after a change: the text, or (text, category); the category defaults to success.
Message = str | tuple[str, str]


def db_session() -> Session:
    """The request's database session, typed as the services take it."""
    return db.session()


def signed_in_user() -> User:
    """The user of this request. Only for views behind `@roles` or `@signed_in`."""
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(user, User):
        raise RuntimeError("signed_in_user() called in a view that anonymous users may open")
    return user


def _roll_back(error: PortalError) -> None:
    """Undo the failed change; NotFound and Forbidden go on to the error pages (404, 403)."""
    if isinstance(error, NotFound | Forbidden):
        raise error
    db.session.rollback()


def filled(value: T | None) -> T:
    """The value of a required form field, once the form has validated (DataRequired)."""
    if value is None:
        raise ValueError("a required form field is empty after validation")
    return value


def attempt(change: Callable[[], T]) -> tuple[T | None, PortalError | None]:
    """Call `change`; commit and return (result, None), or roll back and return (None, error).

    For routes that show the outcome in place (an htmx answer). Only domain errors are caught;
    NotFound and Forbidden go on to the error pages, and so does anything unexpected.
    """
    try:
        result = change()
    except PortalError as error:
        _roll_back(error)
        return None, error
    db.session.commit()
    return result, None


def show_on_form(form: FlaskForm, error: PortalError) -> None:
    """Put each problem next to its field (an error's `errors`: field name -> message) and the
    rest above the form."""
    field_errors: dict[str, str] = getattr(error, "errors", None) or {}
    for name, message in field_errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, message]
        else:
            form.form_errors.append(message)
    if not field_errors:
        form.form_errors.append(str(error))


@overload
def commit_or_show(
    change: Callable[[], T],
    *,
    message: Message | Callable[[T], Message],
    redirect_to: str | Callable[[T], str],
    form: FlaskForm,
    code: int = 302,
) -> Response | None: ...


@overload
def commit_or_show(
    change: Callable[[], T],
    *,
    message: Message | Callable[[T], Message],
    redirect_to: str | Callable[[T], str],
    form: None = None,
    on_error_to: str | None = None,
    code: int = 302,
) -> Response: ...


def commit_or_show(
    change: Callable[[], T],
    *,
    message: Message | Callable[[T], Message],
    redirect_to: str | Callable[[T], str],
    form: FlaskForm | None = None,
    on_error_to: str | None = None,
    code: int = 302,
) -> Response | None:
    """Call the service; on a domain error roll back and show it; else commit, flash, redirect.

    With a `form`, the error is shown on the form and None is returned: the route renders the
    form again. Without one, the error is flashed and the answer is a redirect to `on_error_to`
    (by default the same place as after success). `message` and `redirect_to` may be functions
    of what the service returned; `code` is the redirect's status (303 after an upload).

        form = TermForm()
        if form.validate_on_submit() and (
            done := commit_or_show(
                lambda: services.create_term(db_session(), details(form), actor=signed_in_user()),
                message=lambda term: f"Term {term.code} created.",
                redirect_to=lambda term: url_for("admin.term", term_id=term.id),
                form=form,
            )
        ):
            return done  # committed: a redirect
        return render_template("admin/term_form.html", form=form)  # GET, or errors shown

        # a button, no form: the outcome is flashed either way
        return commit_or_show(
            lambda: services.finalise_section(db_session(), user, section, now=now()),
            message="Grades are final.",
            redirect_to=url_for("grading.gradebook", section_id=section.id),
        )
    """
    if form is None and on_error_to is None and callable(redirect_to):
        raise TypeError("commit_or_show without a form needs on_error_to or a fixed redirect_to")
    try:
        result = change()
    except PortalError as error:
        _roll_back(error)
        if form is not None:
            show_on_form(form, error)
            return None
        flash(str(error), "danger")
        return redirect(on_error_to or str(redirect_to), code=code)
    db.session.commit()
    text = message(result) if callable(message) else message
    text, category = (text, "success") if isinstance(text, str) else text
    flash(text, category)
    return redirect(redirect_to(result) if callable(redirect_to) else redirect_to, code=code)
