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

from portal.accounts.services import authenticate
from portal.audit.services import record
from portal.auth.forms import LoginForm
from portal.auth.policy import is_safe_redirect, public
from portal.extensions import db, limiter
from portal.models import utcnow
from portal.web import db_session

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
        user = authenticate(db_session(), username, form.password.data or "", now=utcnow())
        if user is None:
            db.session.rollback()
            record(
                db_session(),
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
            db_session(),
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


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Response:
    logout_user()
    session.clear()
    flash("You have been logged out.", "success")
    return redirect(url_for("auth.login"))
