"""Log-in and log-out."""

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from portal.accounts.services import authenticate, change_password
from portal.audit.services import record
from portal.auth.forms import LoginForm, PasswordChangeForm
from portal.auth.policy import IDLE_MESSAGE, is_safe_redirect, public, signed_in
from portal.errors import ValidationError
from portal.extensions import db, limiter

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["PORTAL"]["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@public
def login() -> str | Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        user = authenticate(db.session, username, form.password.data or "")
        if user is None:
            db.session.rollback()
            record(
                db.session,
                None,
                "auth.login_failed",
                entity_type="user",
                summary=f"Failed log-in as {username!r}",
                after={"username": username, "ip": request.remote_addr},
            )
            db.session.commit()
            flash("That username and password do not match an active account.", "danger")
            return render_template("auth/login.html", form=form), 401
        record(
            db.session,
            user,
            "auth.login",
            entity_type="user",
            entity_id=user.id,
            summary=f"{user.username} logged in",
            after={"ip": request.remote_addr},
        )
        db.session.commit()
        session.clear()  # a fresh session on log-in (no fixation)
        login_user(user)
        target = form.next.data
        return redirect(target if is_safe_redirect(target) else url_for("main.index"))
    return render_template("auth/login.html", form=form)


@bp.route("/password", methods=["GET", "POST"])
@signed_in
def change_own_password() -> str | Response | tuple[str, int]:
    """Any user's own password; the only page open to an account with a one-time password."""
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            change_password(
                db.session, user, form.current_password.data or "", form.new_password.data or ""
            )
        except ValidationError as error:
            db.session.rollback()
            form.form_errors.append(str(error))
        else:
            record(
                db.session,
                user,
                "account.password_change",
                entity_type="user",
                entity_id=user.id,
                summary=f"{user.username} changed their password",
            )
            db.session.commit()
            login_user(user)  # this session carries the new session version; others end
            flash("Your password was changed. You were logged out everywhere else.", "success")
            return redirect(url_for("main.index"))
    if request.method == "POST":
        return render_template("auth/password.html", form=form), 422
    return render_template("auth/password.html", form=form)


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Response:
    logout_user()
    session.clear()
    if request.form.get("reason") == "idle":  # the page's own idle timer (static/js/portal.js)
        flash(IDLE_MESSAGE, "info")
    else:
        flash("You have been logged out.", "success")
    return redirect(url_for("auth.login"))
