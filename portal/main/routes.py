"""Home page and health check."""

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.policy import public, signed_in
from portal.catalogue.services import current_term
from portal.database import database_state
from portal.main import services
from portal.models import utcnow
from portal.web import db_session, one_page, signed_in_user

bp = Blueprint("main", __name__)


@bp.get("/")
@signed_in
def index() -> str | Response:
    role = current_user.role
    if role == "student":
        return redirect(url_for("registration.mine"))
    if role == "admin":
        return _admin_home()
    sections = services.staff_sections(db_session(), signed_in_user())
    return render_template("main/staff_home.html", sections=sections)


def _admin_home() -> str:
    counts = services.admin_counts(db_session())
    steps = services.setup_steps(db_session(), counts)
    term = current_term(db_session(), utcnow().date())
    page = None
    if term is not None:
        page = one_page(services.term_sections_query(term))
    return render_template(
        "main/admin_home.html",
        counts=counts,
        steps=steps if not all(step.done for step in steps) else [],
        term=term,
        page=page,
    )


@bp.get("/about")
@public
def about() -> str:
    """The version, what IT locked on this machine (and what that overrode), and the state of
    the update check (the desktop launcher hands the portal `UPDATE_STATUS`, a callable)."""
    settings = current_app.config["PORTAL"]
    status = current_app.config.get("UPDATE_STATUS")
    return render_template(
        "main/about.html",
        desktop=settings["MODE"] == "desktop",
        locked=settings.get("LOCKED", []),
        warnings=settings.get("POLICY_WARNINGS", []),
        update=status() if callable(status) else None,
    )


@bp.get("/upload-too-large")
@public
def upload_too_large() -> tuple[str | Response, int]:
    """The page nginx shows instead of its own when a body is over its client_max_body_size
    (`error_page 413` in installers/server/nginx-campus-portal.conf): the same words the portal
    says when it refuses a file itself."""
    from portal import multipart
    from portal.api import API_PREFIX, problems

    message = str(multipart.body_too_large(multipart.Limits.from_app(), None))
    refused = request.headers.get("X-Original-URI", "")  # the address the body was sent to
    if refused.startswith(API_PREFIX):
        return problems.problem(413, detail=message), 413
    if refused.startswith("/sync/") or request.accept_mimetypes.best == "application/json":
        body = {"status": 413, "title": problems.status_title(413), "detail": message}
        return jsonify(body), 413
    referrer = request.referrer or ""
    back = referrer if referrer.startswith(request.host_url) else None
    page = render_template(
        "error.html", status=413, title=_("The file is too large"), message=message, back=back
    )
    return page, 413


@bp.get("/healthz")
@public
def healthz() -> tuple[Response, int]:
    database = database_state()
    healthy = database["status"] == "ok"
    body = {
        "status": "ok" if healthy else "degraded",
        "version": current_app.config["VERSION"],
        "mode": current_app.config["PORTAL"]["MODE"],
        "database": database,
    }
    settings = current_app.config["PORTAL"]
    if settings["MODE"] == "desktop":
        # What IT preset for this machine (installers/README.md), so a support call or a test can
        # see which settings the running copy picked up. Read-only; never the enrolment code.
        body["settings"] = {
            "server_url": settings["SERVER_URL"],
            "enrolment_code_set": bool(settings["ENROLMENT_CODE"]),
            "update_check": settings["UPDATE_CHECK"],
            "idle_logout_minutes": settings["IDLE_LOGOUT_MINUTES"],
        }
    return jsonify(body), 200 if healthy else 503
