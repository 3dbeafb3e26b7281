"""The first-run page: create the first administrator of an empty local database."""

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_user
from werkzeug.wrappers import Response

from portal.auth.policy import public
from portal.setup import services
from portal.setup.forms import FirstAdminForm
from portal.web import attempt, db_session, show_on_form

bp = Blueprint("setup", __name__, url_prefix="/setup")
SETUP_DONE = "portal_setup_done"


def _server_url() -> str:
    return str(current_app.config["PORTAL"]["SERVER_URL"])


def _first_run_open() -> bool:
    """Cached once closed: after the first account exists it stays closed for this process."""
    if current_app.extensions.get(SETUP_DONE):
        return False
    is_open = services.first_run_open(db_session(), server_url=_server_url())
    db_session().rollback()
    if not is_open:
        current_app.extensions[SETUP_DONE] = True
    return is_open


@bp.before_app_request
def _send_first_visit_to_setup() -> Response | None:
    """A desktop copy with no accounts yet shows the first-run page instead of the log-in."""
    if (
        request.method == "GET"
        and request.endpoint == "auth.login"
        and current_app.config["PORTAL"]["MODE"] == "desktop"
        and _first_run_open()
    ):
        session.pop("_flashes", None)  # "Please log in" makes no sense before any account
        return redirect(url_for("setup.first_admin"))
    return None


@bp.route("/", methods=["GET", "POST"])
@public
def first_admin() -> str | Response:
    if not _first_run_open():
        abort(404)
    form = FirstAdminForm()
    if form.validate_on_submit():
        admin, error = attempt(
            lambda: services.create_first_admin(
                db_session(),
                username=form.username.data or "",
                full_name=form.full_name.data or "",
                email=form.email.data or "",
                password=form.password.data or "",
                server_url=_server_url(),
            )
        )
        if error is not None:
            show_on_form(form, error)
        elif admin is not None:
            current_app.extensions[SETUP_DONE] = True
            login_user(admin)
            flash(f"Welcome, {admin.full_name}. Campus Portal is ready.", "success")
            return redirect(url_for("main.index"))
    return render_template("setup/first_admin.html", form=form)
