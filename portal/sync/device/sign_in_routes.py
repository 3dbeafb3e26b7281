"""The pages of a sign-in through the campus server on an enrolled copy (sign_in.py): the
buttons of the log-in page, the page that waits for the browser or the code, the callback the
system browser comes back to, the offline PIN and its log-in form."""

from __future__ import annotations

import webbrowser
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.auth.login_throttle import in_words, throttle
from portal.auth.policy import passive, public, signed_in
from portal.auth.sessions import log_in, log_in_failed
from portal.errors import Forbidden, OfflineSignInExpired, ValidationError
from portal.extensions import db
from portal.models import SyncState, User, utcnow
from portal.sync.device import runner as device
from portal.sync.device import sign_in
from portal.sync.device.client import SyncError
from portal.sync.forms import OfflinePinForm, PinLoginForm
from portal.web import db_session, signed_in_user

bp = Blueprint("campus_sign_in", __name__)

PENDING_KEY = "portal_campus_sign_ins"
SESSION_KEY = "campus_sign_in"
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def pending() -> sign_in.PendingSignIns:
    found: sign_in.PendingSignIns = current_app.extensions.setdefault(
        PENDING_KEY, sign_in.PendingSignIns()
    )
    return found


def _enrolled() -> Any:
    """The copy's sync state; 404 on the central server and on a copy not enrolled."""
    if current_app.config["PORTAL"]["MODE"] != "desktop":
        abort(404)
    table = SyncState.__table__.c
    state = (
        db_session()
        .execute(select(table.server_url, table.device_id, table.server_single_sign_on))
        .first()
    )
    if state is None:
        abort(404)
    return state


def offer() -> dict[str, bool] | None:
    """What the log-in page offers besides the password (None: nothing): the campus account's
    browser sign-in or code (when the server said at the last sync that it offers single
    sign-on, and this copy is not known to be offline), and the offline PIN (when someone has
    one here)."""
    if current_app.config["PORTAL"]["MODE"] != "desktop":
        return None
    runner = device.runner_for(current_app)
    table = SyncState.__table__.c
    state = db_session().execute(select(table.server_single_sign_on)).first()
    if state is None:
        return None
    campus = bool(state.server_single_sign_on) and runner.online is not False
    flow = current_app.config["PORTAL"]["CAMPUS_SIGN_IN_FLOW"]
    return {
        "browser": campus and flow == "browser",
        "code": campus,
        "pin": sign_in.has_pins(db_session()),
    }


@bp.app_context_processor
def _offer() -> dict[str, Any]:
    return {"campus_sign_in_offer": offer}


class _StartForm(FlaskForm):
    """The log-in page's campus buttons: a form for its CSRF token only."""


def _finish_login(user: User, method: str) -> None:
    throttle().succeeded(user.username)
    log_in(user, via=method)


@bp.post("/sign-in/campus")
@public
def start() -> Response | str:
    """ "Sign in with your campus account": the system browser opens at the server's page (or,
    with flow=code or the copy's setting, a code to type on another device)."""
    state = _enrolled()
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if not _StartForm().validate_on_submit():
        abort(400)
    runner = device.runner_for(current_app)
    db_session().rollback()  # the sync and the state are written on their own connections
    if not sign_in.server_reachable(runner):
        flash(
            _(
                "The campus server cannot be reached, so you cannot sign in with your campus "
                "account now. If you chose an offline PIN on this computer, sign in with it."
            ),
            "danger",
        )
        return redirect(url_for("auth.login"))
    flow = request.form.get("flow", "browser")
    if current_app.config["PORTAL"]["CAMPUS_SIGN_IN_FLOW"] != "browser":
        flow = "code"  # IT's choice: no browser is opened on this computer
    if flow == "code":
        try:
            attempt = sign_in.request_device_code(runner, pending())
        except SyncError as error:
            flash(str(error), "danger")
            return redirect(url_for("auth.login"))
    else:
        host = request.host
        if not host.startswith(tuple(h + ":" for h in LOOPBACK_HOSTS)):
            abort(400)
        attempt = pending().start_browser(
            state.server_url, str(state.device_id), f"http://{host}{sign_in.CALLBACK_PATH}"
        )
        webbrowser.open(attempt.authorize_url)
    session[SESSION_KEY] = attempt.id
    return render_template("auth/campus_waiting.html", attempt=attempt)


def _attempt() -> sign_in.Attempt | None:
    attempt_id = session.get(SESSION_KEY)
    return pending().get(attempt_id) if isinstance(attempt_id, str) else None


@bp.get("/sign-in/campus/status")
@public
@passive
def status() -> Response:
    """Where the window's sign-in stands: it polls this (the browser that signs in cannot reach
    the window). When it is done, this request signs the window in."""
    _enrolled()
    attempt = _attempt()
    if attempt is None:
        return jsonify(state="failed", message=_("No sign-in is in progress. Start it again."))
    if attempt.kind == sign_in.CODE:
        db_session().rollback()
        sign_in.poll_device_code(device.runner_for(current_app), attempt, pending().clock())
    if attempt.error:
        pending().end(attempt.id)
        session.pop(SESSION_KEY, None)
        return jsonify(state="failed", message=attempt.error)
    if attempt.user_id is None:
        return jsonify(state="waiting")
    user = db_session().get(User, attempt.user_id)
    pending().end(attempt.id)
    if user is None or not user.is_active:
        session.pop(SESSION_KEY, None)
        return jsonify(
            state="failed", message=_("This account has been deactivated. Ask an administrator.")
        )
    _finish_login(user, attempt.kind)
    target = (
        url_for("campus_sign_in.offline_pin")
        if sign_in.needs_pin(db_session(), user)
        else url_for("main.index")
    )
    return jsonify(state="done", next=target)


@bp.get(sign_in.CALLBACK_PATH)
@public
def callback() -> tuple[str, int] | str:
    """Where the system browser comes back from the server's page (RFC 8252 7.3): the one
    route of the local server open without the launch cookie (desktop/guard.py), so the state
    is checked first: made by this process, for one waiting sign-in, used once, not expired."""
    _enrolled()
    state = request.args.get("state", "")
    attempt = pending().take_state(state) if state else None
    if attempt is None:
        return render_template(
            "auth/campus_callback.html",
            ok=False,
            message=_(
                "This sign-in link is not one Campus Portal is waiting for (already used, "
                "expired, or not started here). Start the sign-in again in Campus Portal."
            ),
        ), 400
    if error := request.args.get("error"):
        attempt.error = request.args.get("error_description", "")[:500] or (
            _("The sign-in was cancelled.")
            if error == "access_denied"
            else _("The campus server refused the sign-in.")
        )
        return render_template("auth/campus_callback.html", ok=False, message=attempt.error), 400
    db_session().rollback()
    sign_in.exchange_code(device.runner_for(current_app), attempt, request.args.get("code", ""))
    if attempt.error:
        return render_template("auth/campus_callback.html", ok=False, message=attempt.error), 400
    return render_template("auth/campus_callback.html", ok=True, message="")


@bp.route("/offline-pin", methods=["GET", "POST"])
@signed_in
def offline_pin() -> Response | str | tuple[str, int]:
    """The PIN for signing in here offline, chosen at the first sign-in through the server."""
    _enrolled()
    user = signed_in_user()
    form = OfflinePinForm()
    if form.validate_on_submit():
        try:
            sign_in.set_pin(db_session(), user, form.pin.data or "", now=utcnow())
        except ValidationError as error:
            form.pin.errors = [str(error)]
            return render_template("auth/offline_pin.html", form=form), 422
        db.session.commit()
        days = current_app.config["PORTAL"]["OFFLINE_SIGN_IN_DAYS"]
        flash(
            _(
                "Your offline PIN is saved. Without a network, sign in here with your username "
                "and this PIN, for %(days)s days after your last sign-in with your campus "
                "account.",
                days=days,
            ),
            "success",
        )
        return redirect(url_for("main.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/offline_pin.html", form=form), status


@bp.route("/login/pin", methods=["GET", "POST"])
@public
def pin_login() -> Response | str | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Offline sign-in with the PIN, with the same waits after wrong tries as the password
    (login_throttle, per account)."""
    if current_app.config["PORTAL"]["MODE"] != "desktop":
        abort(404)
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = PinLoginForm()
    if not form.validate_on_submit():
        return render_template("auth/pin_login.html", form=form)
    username = (form.username.data or "").strip().lower()
    if wait := throttle().seconds_to_wait(username):
        flash(_wrong_pins(username, wait), "warning")
        return render_template("auth/pin_login.html", form=form), 429, {"Retry-After": str(wait)}
    settings = current_app.config["PORTAL"]
    try:
        user = sign_in.check_pin(
            db_session(),
            username,
            form.pin.data or "",
            now=utcnow(),
            offline_days=settings["OFFLINE_SIGN_IN_DAYS"],
        )
    except (OfflineSignInExpired, Forbidden) as error:
        db.session.rollback()
        flash(str(error), "danger")
        return render_template("auth/pin_login.html", form=form), 401
    if user is None:
        log_in_failed(username, f"Failed log-in with an offline PIN as {username!r}")
        flash(_("That username and PIN do not match an account of this computer."), "danger")
        if wait := throttle().failed(username):
            flash(_wrong_pins(username, wait), "warning")
        return render_template("auth/pin_login.html", form=form), 401
    _finish_login(user, "pin")
    return redirect(url_for("main.index"))


def _wrong_pins(username: str, seconds: int) -> str:
    return _(
        "Too many wrong tries for %(username)s. Try again in %(when)s. Other people can log in "
        "on this computer meanwhile.",
        username=username,
        when=in_words(seconds),
    )
