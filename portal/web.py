"""What every feature's routes share: the signed-in user, typed, and one route shape.

The shape "call the service; on a domain error roll back and show it; else commit, flash and
redirect" is written once, here (`commit_or_show`); `attempt` is its core, for routes that show
the outcome in place (htmx answers) instead of redirecting. A success message may carry an
`Undo` button (`offer_undo`, shown by base.html beside the message it belongs to).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, overload

from flask import after_this_request, current_app, flash, redirect, send_file, session
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from portal.errors import Busy, Forbidden, NotFound, PortalError
from portal.extensions import db
from portal.models import User

T = TypeVar("T")
# What to flash after a change: the text, or (text, category); the category defaults to success.
Message = str | tuple[str, str]
UNDO_KEY = "undo"


@dataclass(frozen=True)
class Undo:
    """A button beside a success message that reverses what was just done.

    It is a plain form POST (with the CSRF token; no JavaScript needed) to an ordinary route,
    which checks the role, the rules and the audit exactly as that route always does, and
    refuses with a message when there is nothing left to undo. `label` names what the button
    does ("Undo", or "Register again" where the old state cannot be promised back); `note` says
    what to expect when the label alone would promise too much.
    """

    action: str  # the URL the button posts to
    fields: Mapping[str, str] = field(default_factory=dict)  # hidden fields sent with it
    label: str = field(default_factory=lambda: _("Undo"))  # said when it is made (a request)
    note: str = ""


def offer_undo(message: str, undo: Undo) -> None:
    """Show `undo` beside the flashed `message` (the most recent offer replaces any other)."""
    session[UNDO_KEY] = {"message": message, **asdict(undo), "fields": dict(undo.fields)}


def take_undo_offers(messages: list[tuple[str, str]]) -> dict[str, Undo]:
    """The offer for the flashed messages being shown, by message text (for base.html). It is
    taken with them: an offer whose message is not shown any more is dropped."""
    stored: dict[str, Any] | None = session.pop(UNDO_KEY, None)
    if not stored or stored.get("message") not in {text for _, text in messages}:
        return {}
    message = stored.pop("message")
    return {message: Undo(**stored)}


def db_session() -> Session:
    """The request's database session, typed as the services take it."""
    return db.session()


def commit_keeping_loaded() -> None:
    """Commit the request's transaction without expiring what it loaded.

    A commit normally marks every loaded object stale, so an answer built from them afterwards
    reads each again (the registration, its section, course and term, the signed-in user). An
    answer about the change just made shows what this transaction wrote, which these objects
    already hold; so they are kept. Only for answers built from the objects the change itself
    wrote or read under its locks."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def signed_in_user() -> User:
    """The user of this request. Only for views behind `@roles` or `@signed_in`."""
    user = current_user._get_current_object()
    if not isinstance(user, User):
        raise RuntimeError("signed_in_user() called in a view that anonymous users may open")
    return user


def one_page(query: Any) -> Any:
    """The page of `query` the request asks for (its `page` argument), as many rows as the
    page_size setting says; a page past the last is empty rather than an error."""
    return db.paginate(query, per_page=current_app.config["PAGE_SIZE"], error_out=False)


def attachment(source: Any, *, mimetype: str, name: str) -> Response:
    """A file sent to be saved as `name` (a lab report, a zip of them), whole each time: never
    read by the browser as another type, kept in a cache or answered in part."""
    response = send_file(
        source,
        mimetype=mimetype,
        as_attachment=True,
        download_name=name,
        conditional=False,
        etag=False,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


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


def answer_busy(error: Busy) -> None:
    """Make this request's answer a 503 with Retry-After (a page shown again with a Busy
    error: what was typed is kept, and the status says to try again)."""

    @after_this_request
    def _busy(response: Response) -> Response:
        response.status_code = error.status_code
        response.headers["Retry-After"] = str(error.retry_after)
        return response


def show_on_form(form: FlaskForm, error: PortalError) -> None:
    """Put each problem next to its field (an error's `errors`: field name -> message) and the
    rest above the form. A field that already shows a problem from its own check keeps that
    one message: the same rule is not said twice."""
    field_errors: dict[str, str] = getattr(error, "errors", None) or {}
    for name, message in field_errors.items():
        field = getattr(form, name, None)
        if field is not None:
            if not field.errors:
                field.errors = [message]
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
    undo: Undo | Callable[[T], Undo | None] | None = None,
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
    undo: Undo | Callable[[T], Undo | None] | None = None,
) -> Response: ...


def commit_or_show(
    change: Callable[[], T],
    *,
    message: Message | Callable[[T], Message],
    redirect_to: str | Callable[[T], str],
    form: FlaskForm | None = None,
    on_error_to: str | None = None,
    code: int = 302,
    undo: Undo | Callable[[T], Undo | None] | None = None,
) -> Response | None:
    """Call the service; on a domain error roll back and show it; else commit, flash, redirect.

    With a `form`, the error is shown on the form and None is returned: the route renders the
    form again. Without one, the error is flashed and the answer is a redirect to `on_error_to`
    (by default the same place as after success). `message` and `redirect_to` may be functions
    of what the service returned; `code` is the redirect's status (303 after an upload). `undo`
    (or a function of the result giving one, or None) puts an Undo button beside the message.

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
        if isinstance(error, Busy):
            if form is None:
                raise  # the 503 page says so, with Retry-After
            answer_busy(error)  # the form again, with what was typed, as a 503
        if form is not None:
            show_on_form(form, error)
            return None
        flash(str(error), "danger")
        return redirect(on_error_to or str(redirect_to), code=code)
    db.session.commit()
    text = message(result) if callable(message) else message
    text, category = (text, "success") if isinstance(text, str) else text
    flash(text, category)
    offer = undo(result) if callable(undo) else undo
    if offer is not None:
        offer_undo(text, offer)
    return redirect(redirect_to(result) if callable(redirect_to) else redirect_to, code=code)


def commit_form(
    form: FlaskForm,
    change: Callable[[], T],
    *,
    message: Message | Callable[[T], Message],
    redirect_to: str | Callable[[T], str],
    undo: Undo | Callable[[T], Undo | None] | None = None,
) -> Response | None:
    """A submitted form, with every problem reported at once: the form's own field checks and
    the service's rules (which compare fields: an end before its start) run together, and
    nothing is committed unless both pass. Returns the redirect after success; None for a GET
    or when problems are shown (the route renders the form again).

        form = TermForm()
        change = lambda: services.create_term(db_session(), details(form), actor=user)
        if done := commit_form(form, change, message="Term created.", redirect_to=...):
            return done
        return render_template("admin/term_form.html", form=form)

    The service is called even when a field failed its check, with what could be read (None
    for a field left empty or unreadable), so it must refuse what is missing before writing
    anything; a request whose CSRF token fails calls nothing.
    """
    if not form.is_submitted():
        return None
    fields_pass = form.validate()
    if "csrf_token" in form.errors:
        return None
    if fields_pass:
        return commit_or_show(
            change, message=message, redirect_to=redirect_to, form=form, undo=undo
        )
    try:
        change()
    except PortalError as error:
        _roll_back(error)
        show_on_form(form, error)
    db.session.rollback()
    return None
