"""One place that turns errors into pages, JSON, or (under /api) RFC 9457 problem details."""

import errno
import logging
from typing import cast

from flask import (
    Flask,
    Response,
    flash,
    g,
    get_flashed_messages,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from portal.api import problems
from portal.api.problems import is_api_request
from portal.errors import Busy, PortalError
from portal.extensions import login_manager
from portal.operations import metrics

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/sync/", "/healthz")) or (
        request.accept_mimetypes.best == "application/json"
    )


def _render(status: int, title: str, message: str) -> tuple[Response | str, int]:
    if is_api_request():
        return problems.problem(status, detail=message), status
    if _wants_json():
        return jsonify({"status": status, "title": title, "detail": message}), status
    return render_template("error.html", status=status, title=title, message=message), status


SQLITE_FULL = 13  # primary result code: "database or disk is full"
POSTGRES_DISK_FULL = "53100"
FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def storage_is_full(error: BaseException) -> bool:
    """True when `error` (or what caused it) says the disk holding the data is full: SQLite's
    SQLITE_FULL, PostgreSQL's disk_full, or ENOSPC/EDQUOT from writing a file (uploads)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


API_MESSAGES = {
    401: _l("Log in, or send a personal API token: 'Authorization: Bearer cpt_...'."),
    403: _l("Your account may not do this."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not take that method."),
    413: _l("The request body is larger than allowed."),
    429: _l("Too many requests. Wait a little and try again."),
}


def _api_http_error(error: HTTPException, status: int, messages: dict[int, str]) -> Response:
    """An HTTP error under /api as a problem: schema violations (422 from webargs) list each field;
    the headers a client needs (Allow, WWW-Authenticate, Retry-After) are kept."""
    data = getattr(error, "data", None) or {}
    if status == 422 and "messages" in data:
        return problems.validation_problem(data["messages"])
    headers = {
        name: value
        for name, value in error.get_headers()
        if name in {"Allow", "WWW-Authenticate", "Retry-After"}
    }
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="Campus Portal"')
    if error.description and error.description != type(error).description:
        detail = (
            error.description
        )  # said by the code that refused, e.g. "The CSRF token is missing."
    else:
        detail = str(API_MESSAGES.get(status) or messages.get(status, ""))
    return problems.problem(status, detail=detail, headers=headers)


def _logging_out_of_an_ended_session() -> bool:
    return request.endpoint == "auth.logout" and not current_user.is_authenticated


def _flash_once(message: str, category: str) -> None:
    """Flash `message` unless it is already waiting to be shown. Reading the waiting messages
    (`get_flashed_messages`) takes them out of the session, so they are put back, in order;
    this is for an answer that redirects (the page that follows shows them)."""
    waiting = cast(list[tuple[str, str]], get_flashed_messages(with_categories=True))
    for waiting_category, text in waiting:
        flash(text, waiting_category)
    if (category, message) not in waiting:
        flash(message, category)


def init_app(app: Flask) -> None:
    @app.errorhandler(PortalError)
    def _portal_error(error: PortalError) -> tuple[Response | str, int, dict[str, str]]:
        from portal.extensions import db

        db.session.rollback()
        headers = {}
        if isinstance(error, Busy):
            headers["Retry-After"] = str(error.retry_after)
        if is_api_request():
            problem = problems.from_domain_error(error)
            return problem, problem.status_code, headers
        if not isinstance(error, Busy):
            page, status = _render(error.status_code, _("That could not be done"), str(error))
            return page, status, headers
        try:
            page, status = _render(error.status_code, _("Busy: try again"), str(error))
        except Busy:
            # The page's frame reads the signed-in user, and the database is still busy (on
            # SQLite every transaction waits for the file's write lock): shown signed out.
            db.session.rollback()
            g._login_user = login_manager.anonymous_user()
            page, status = _render(error.status_code, _("Busy: try again"), str(error))
        return page, status, headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> BaseResponse | tuple[Response | str, int]:
        if isinstance(error, CSRFError) and _logging_out_of_an_ended_session():
            # The page's idle timer (or a log-out click) came after the server had already ended
            # the session, and with it the form's CSRF secret: the wish is granted, not refused.
            from portal.auth.policy import IDLE_MESSAGE

            message = (
                IDLE_MESSAGE if request.form.get("reason") == "idle" else _("You are logged out.")
            )
            _flash_once(message, "info")  # the server may have said it when it ended it
            return redirect(url_for("auth.login"))
        if error.response is not None:  # the code that refused made the page (the log-in limit)
            return cast(BaseResponse, error.response)
        messages = {
            400: _(
                "The request could not be understood. If you submitted a form, reload the page "
                "and try again."
            ),
            403: _("You do not have permission to open this page."),
            404: _("There is nothing at this address."),
            405: _("That action is not available here."),
            413: _("The upload is larger than allowed."),
            429: _("Too many attempts. Wait a minute and try again."),
        }
        status = error.code or 500
        if status == 413 and request.mimetype == "multipart/form-data":
            # A form refused before it was read (Content-Length over MAX_CONTENT_LENGTH): the form
            # around a file is small, so this is a file over its limit, said as the parser says it.
            from portal import multipart

            too_large = multipart.body_too_large(
                multipart.Limits.from_app(), request.content_length
            )
            error.description = str(too_large)
            messages[413] = str(too_large)
        if is_api_request():
            problem = _api_http_error(error, status, messages)
            return problem, problem.status_code
        title = str(problems.STATUS_TITLES.get(status, error.name))
        return _render(status, title, messages.get(status, error.description or ""))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response | str, int]:
        from portal.extensions import db

        if storage_is_full(error):
            log.error("disk full: %s %s was not saved (%s)", request.method, request.path, error)
            db.session.rollback()
            return _render(
                507,
                _("The disk is full"),
                _(
                    "Your last change was not saved because the disk that holds the portal's "
                    "data is full. Everything saved before is safe. Free some space on that disk "
                    "(or ask IT support to), then try again."
                ),
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        metrics.record_unhandled_error()
        return _render(
            500,
            _("Something went wrong"),
            _(
                "The portal hit an unexpected error. Nothing you saved before this was lost; "
                "try again, and tell IT support if it keeps happening."
            ),
        )
