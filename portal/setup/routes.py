"""The first-run page of an empty local database: connect to the campus server, or (where IT
set no server) create the first local administrator."""

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_user
from werkzeug.wrappers import Response

from portal.auth.policy import public
from portal.setup import services
from portal.setup.forms import ConnectForm, FirstAdminForm
from portal.sync.device import runner as device
from portal.sync.device.client import SyncError, default_device_name
from portal.web import attempt, db_session, show_on_form

bp = Blueprint("setup", __name__, url_prefix="/setup")
SETUP_DONE = "portal_setup_done"


def _server_url() -> str:
    return str(current_app.config["PORTAL"]["SERVER_URL"])


def _first_run_open() -> bool:
    """Cached once closed: after the first account exists it stays closed for this process."""
    if current_app.extensions.get(SETUP_DONE):
        return False
    is_open = services.first_run_open(db_session())
    db_session().rollback()
    if not is_open:
        current_app.extensions[SETUP_DONE] = True
    return is_open


# The front door and the log-in page: `/` goes to the first-run page in one hop (the desktop
# launcher's redirect follows where `/` sends the visitor), not through the log-in page.
FIRST_VISIT_ENDPOINTS = frozenset({"main.index", "auth.login"})


@bp.before_app_request
def _send_first_visit_to_setup() -> Response | None:
    """A desktop copy with no accounts yet shows the first-run page instead of the log-in."""
    if (
        request.method == "GET"
        and request.endpoint in FIRST_VISIT_ENDPOINTS
        and current_app.config["PORTAL"]["MODE"] == "desktop"
        and _first_run_open()
    ):
        get_flashed_messages()  # taken, never shown: "Please log in" before any account
        return redirect(url_for("setup.first_admin"))
    return None


def _page(admin_form: FirstAdminForm | None, connect_form: ConnectForm) -> str:
    """Both ways in, side by side: the local administrator only where IT set no server."""
    settings = current_app.config["PORTAL"]
    if connect_form.server_url.data is None:  # not the form just sent: what IT preset
        connect_form.server_url.data = settings["SERVER_URL"]
        connect_form.code.data = settings["ENROLMENT_CODE"]
        connect_form.device_name.data = default_device_name()
    local = not settings["SERVER_URL"]
    return render_template(
        "setup/first_admin.html",
        form=(admin_form or FirstAdminForm(formdata=None)) if local else None,
        connect=connect_form,
    )


@bp.post("/connect")
@public
def connect() -> str | Response:
    """Enrol this copy with the campus server; the first sync starts in the background."""
    if current_app.config["PORTAL"]["MODE"] != "desktop" or not _first_run_open():
        abort(404)
    form = ConnectForm()
    if not form.validate_on_submit():
        return _page(None, form)
    db_session().rollback()  # enrolling writes on its own connection (SQLite: one writer)
    try:
        username = device.connect_to_server(
            device.runner_for(current_app),
            form.server_url.data or "",
            form.code.data or "",
            device_name=" ".join((form.device_name.data or "").split()) or default_device_name(),
        )
    except SyncError as error:
        form.form_errors.append(str(error))
        return _page(None, form)
    current_app.extensions[SETUP_DONE] = True
    flash(
        _(
            "This computer is connected to the campus server for %(username)s. Your data is "
            "on its way (the bar at the top shows the sync); sign in with your campus "
            "password.",
            username=username,
        ),
        "success",
    )
    return redirect(url_for("auth.login", username=username))


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
            flash(
                _("Welcome, %(full_name)s. Campus Portal is ready.", full_name=admin.full_name),
                "success",
            )
            return redirect(url_for("main.index"))
    return _page(form, ConnectForm(formdata=None))
