"""Log-in and log-out. On a desktop copy connected to a campus server, a person's first
sign-in there goes through the server (portal.sync.device.runner.sign_in_through_server)."""

import math
import time
from typing import TYPE_CHECKING, Any, cast

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask import Response as FlaskResponse
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_limiter import RequestLimit
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from portal.accounts.services import authenticate, change_password
from portal.auth.forms import LoginForm, PasswordChangeForm
from portal.auth.login_queue import login_slot
from portal.auth.login_throttle import in_words, throttle
from portal.auth.policy import IDLE_MESSAGE, is_safe_redirect, public, signed_in
from portal.auth.sessions import log_in, log_in_failed
from portal.errors import OfflineSignInExpired
from portal.extensions import db, limiter
from portal.models import User, utcnow
from portal.sync.device import runner as device
from portal.sync.device.client import SyncError
from portal.web import commit_or_show, db_session, filled, signed_in_user

if TYPE_CHECKING:  # Authlib comes with the `server` extra: imported where `oidc` is on
    from portal.auth.single_sign_on import SignInProblem

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["PORTAL"]["LOGIN_RATE_LIMIT"]


def _on_desktop() -> bool:
    """A desktop copy limits each account (login_throttle), not its one address (127.0.0.1)."""
    return bool(current_app.config["PORTAL"]["MODE"] == "desktop")


def _try_later(form: LoginForm, message: str, seconds: int) -> FlaskResponse:
    """The log-in form again, saying when to try again (429 with Retry-After)."""
    flash(message, "warning")
    response = make_response(render_template("auth/login.html", form=form), 429)
    response.headers["Retry-After"] = str(max(1, seconds))
    return response


def _address_limit_reached(limit: RequestLimit) -> FlaskResponse:
    """The central server's limit per client address was reached: the form, with when."""
    window = int(limit.limit.get_expiry())  # the limit's period ("per minute": 60 s)
    seconds = max(1, min(math.ceil(limit.reset_at - time.time()), window))
    return _try_later(
        LoginForm(),
        _(
            "Too many log-in attempts from this address. Try again in %(when)s.",
            when=in_words(seconds),
        ),
        seconds,
    )


def _through_campus_server(username: str, password: str) -> tuple[User | None, str]:
    """When the local check fails on a connected desktop copy: the campus server checks the
    password, a sync brings the account here, and the local check is made again. Returns
    the user, or None with what to tell the person ("" when this copy is not connected)."""
    if current_app.config["PORTAL"]["MODE"] != "desktop":
        return None, ""
    runner = device.runner_for(current_app)
    db_session().rollback()  # the sync writes on its own connections (SQLite: one writer)
    if device.current_state(runner.engine) is None:
        return None, ""
    try:
        device.sign_in_through_server(runner, username, password)
    except SyncError as error:
        if error.reason == "unreachable" and device.has_local_verifier(runner.engine, username):
            return None, ""  # known here: the password did not match the one this copy knows
        return None, str(error)
    try:
        user = _check_here(username, password)
    except OfflineSignInExpired as error:
        return None, str(error)
    if user is None:
        return None, _(
            "The campus server accepted the sign-in, but this computer has not received the "
            "account yet. Wait for the sync to finish and try again."
        )
    return user, ""


def _methods() -> list[str]:
    return list(current_app.config["PORTAL"]["SIGN_IN_METHODS"])


def _through_directory(username: str, password: str) -> tuple[User | None, str]:
    """When `ldap` is on and the name is not a local account's: the campus directory checks
    the password; the account is created or brought up to date. Returns the user, or None with
    what to tell the person ("" for a wrong password)."""
    if "ldap" not in _methods():
        return None, ""
    # ldap3 comes with the `server` extra: a desktop copy never offers `ldap` (portal/config.py).
    from portal.accounts import directory

    settings = current_app.config["PORTAL"]
    try:
        user = directory.sign_in_with_password(
            db_session(), settings, username, password, now=utcnow()
        )
        return user, ""
    except (directory.DirectoryUnavailable, directory.DirectoryRefused) as error:
        db.session.rollback()
        return None, str(error)


def _check_here(username: str, password: str) -> User | None:
    """The password against this database's accounts: on a desktop copy, a campus account's
    kept verifier too, for offline_sign_in_days after its last online sign-in."""
    settings = current_app.config["PORTAL"]
    offline_days = settings["OFFLINE_SIGN_IN_DAYS"] if _on_desktop() else None
    return authenticate(db_session(), username, password, now=utcnow(), offline_days=offline_days)


# One budget per client address for every way of signing in (the form, single sign-on).
LOGIN_SCOPE = "login"


@bp.route("/login", methods=["GET", "POST"])
@limiter.shared_limit(
    _login_limit,
    LOGIN_SCOPE,
    methods=["POST"],
    exempt_when=_on_desktop,
    on_breach=_address_limit_reached,
)
@public
def login() -> str | Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        form.username.data = request.args.get("username", "")[:64]
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        if _on_desktop() and (wait := throttle().seconds_to_wait(username)):
            return _try_later(form, _wrong_passwords_message(username, wait), wait)
        with login_slot() as admitted:
            if not admitted:
                return _busy(form)
            user, expired = None, ""
            if "local" in _methods():
                try:
                    user = _check_here(username, form.password.data or "")
                except OfflineSignInExpired as error:
                    expired = str(error)
        problem = ""
        if user is None:
            user, problem = _through_directory(username, form.password.data or "")
        if user is None and not problem:
            user, problem = _through_campus_server(username, form.password.data or "")
        if user is None and not problem:
            problem = expired  # and the campus server could not renew it
        if user is None:
            log_in_failed(username, f"Failed log-in as {username!r}", reason=problem)
            flash(
                problem or _("That username and password do not match an active account."),
                "danger",
            )
            if _on_desktop() and not problem and (wait := throttle().failed(username)):
                flash(_wrong_passwords_message(username, wait), "warning")
            return render_template("auth/login.html", form=form), 401
        if _on_desktop():
            throttle().succeeded(username)
        log_in(user)
        target = form.next.data
        return redirect(target if is_safe_redirect(target) else url_for("main.index"))
    return render_template("auth/login.html", form=form)


@bp.record_once
def _single_sign_on(state: BlueprintSetupState) -> None:
    """Authlib's client for the campus provider, where `oidc` is a sign-in method (Authlib
    comes with the `server` extra, and only the central server offers `oidc`)."""
    if "oidc" in state.app.config["PORTAL"]["SIGN_IN_METHODS"]:
        from portal.auth import single_sign_on

        single_sign_on.init_app(cast(Flask, state.app))


def _single_sign_on_offered() -> bool:
    return "oidc" in _methods()


@bp.route("/login/oidc")
@limiter.shared_limit(
    _login_limit, LOGIN_SCOPE, exempt_when=_on_desktop, on_breach=_address_limit_reached
)
@public
def oidc_start() -> Response | tuple[str, int]:
    """ "Sign in with your campus account": off to the campus provider (single sign-on)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if not _single_sign_on_offered():
        abort(404)
    from portal.auth import single_sign_on

    target = request.args.get("next", "")
    session["oidc_next"] = target if is_safe_redirect(target) else ""
    try:
        response: Response = single_sign_on.start()
        return response
    except single_sign_on.SignInProblem as problem:
        return _single_sign_on_problem(problem)


@bp.route("/login/oidc/callback")
@limiter.shared_limit(
    _login_limit, LOGIN_SCOPE, exempt_when=_on_desktop, on_breach=_address_limit_reached
)
@public
def oidc_callback() -> Response | tuple[str, int]:
    """The campus provider's answer: checked, then the account signed in (created or brought
    up to date from the groups on the way)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if not _single_sign_on_offered():
        abort(404)
    from portal.accounts import campus
    from portal.auth import single_sign_on

    settings = current_app.config["PORTAL"]
    try:
        person = single_sign_on.finish(settings)
        user = campus.sign_in(db_session(), person, campus.OIDC, now=utcnow())
    except single_sign_on.SignInProblem as problem:
        return _single_sign_on_problem(problem)
    except campus.CampusRefused as error:
        _record_failure(person.username, str(error))
        return _problem_page(_("You cannot sign in to the portal"), str(error), 403, False)
    target = session.pop("oidc_next", "")
    log_in(user, method="oidc")
    return redirect(target if is_safe_redirect(target) else url_for("main.index"))


def _single_sign_on_problem(problem: "SignInProblem") -> tuple[str, int]:
    """A single sign-on that did not succeed: audited, and a page in plain words."""
    _record_failure("", problem.detail)
    what = problem.problem
    return _problem_page(what.title, what.message, what.status, what.again)


def _problem_page(title: Any, message: Any, status: int, again: bool) -> tuple[str, int]:
    page = render_template(
        "auth/oidc_problem.html", title=title, message=message, start_again=again
    )
    return page, status


def _record_failure(username: str, reason: str) -> None:
    """A single sign-on that ended without a log-in, audited."""
    tried = f" as {username!r}" if username else ""
    log_in_failed(username, f"Failed campus sign-in{tried}", reason=reason, method="oidc")


def _wrong_passwords_message(username: str, seconds: int) -> str:
    return _(
        "Too many wrong passwords for %(username)s. Try again in %(when)s. "
        "Other people can log in on this computer meanwhile.",
        username=username,
        when=in_words(seconds),
    )


BUSY_RETRY_SECONDS = 5


def _busy(form: LoginForm) -> tuple[str, int, dict[str, str]]:
    """Too many log-ins at this moment: say so at once rather than time out."""
    flash(
        _("Many people are logging in right now. Please wait a few seconds and try again."),
        "warning",
    )
    page = render_template("auth/login.html", form=form)
    return page, 503, {"Retry-After": str(BUSY_RETRY_SECONDS)}


@bp.route("/password", methods=["GET", "POST"])
@signed_in
def change_own_password() -> str | Response | tuple[str, int]:
    """Any user's own password; the only page open to an account with a one-time password."""
    user = signed_in_user()
    form = PasswordChangeForm()

    def change() -> User:
        changed = change_password(
            db_session(), user, filled(form.current_password.data), filled(form.new_password.data)
        )
        login_user(changed)  # this session carries the new session version; others end
        return changed

    if form.validate_on_submit() and (
        done := commit_or_show(
            change,
            message=_("Your password was changed. You were logged out everywhere else."),
            redirect_to=url_for("main.index"),
            form=form,
        )
    ):
        return done
    if request.method == "POST":
        return render_template("auth/password.html", form=form), 422
    return render_template("auth/password.html", form=form)


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Response:
    logout_user()
    session.clear()
    if request.form.get("reason") == "idle":  # the page's own idle timer (static/js/portal.js)
        flash(_(IDLE_MESSAGE), "info")
    else:
        flash(_("You have been logged out."), "success")
    return redirect(url_for("auth.login"))
