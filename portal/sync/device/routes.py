"""Sync as a person sees it: the status area of an enrolled desktop copy (its JSON poll, the
Sync now button, the export of unsent changes, a revoked copy's new enrolment code) and "My sync
conflicts" for every signed-in account (on a device and on the central server)."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from portal.auth.policy import is_safe_redirect, passive, public, roles, signed_in
from portal.sync import review
from portal.sync.device import runner as device
from portal.sync.device.client import SyncError
from portal.sync.device.outbox import export_outbox
from portal.sync.forms import EnrolAgainForm
from portal.sync.presentation import KIND_LABELS, TABLE_LABELS, value_text
from portal.sync.resolution import resolve_response
from portal.web import commit_or_show, db_session, one_page, signed_in_user

bp = Blueprint("sync_device", __name__, url_prefix="/sync")


def _runner() -> device.SyncRunner:
    if current_app.config["PORTAL"]["MODE"] != "desktop":
        abort(404)
    return device.runner_for(current_app)


def _status(*, fresh: bool = False) -> device.Status:
    """The device's sync status; 404 when this copy is not enrolled (nothing to show). Read
    once a request (the page's header shows it too), or again when `fresh`."""
    _runner()
    found = _request_status(fresh=fresh)
    if found is None:
        abort(404)
    return found


def _request_status(*, fresh: bool = False) -> device.Status | None:
    if fresh or "sync_status" not in g:
        user_id = current_user.id if current_user.is_authenticated else None
        g.sync_status = device.status(device.runner_for(current_app), db_session(), user_id=user_id)
    return cast("device.Status | None", g.sync_status)


@bp.app_context_processor
def _sync_status_area() -> dict[str, Any]:
    """Every page of an enrolled desktop copy shows where sync stands in its header."""
    if current_app.config["PORTAL"]["MODE"] != "desktop":
        return {"sync_status": None}
    try:
        found = _request_status()
    except Exception:  # an error page must render even when the database does not answer
        found = None
    return {"sync_status": found}


@bp.app_template_filter("sync_value")
def _sync_value(value: Any) -> str:
    return value_text(value)


@bp.get("/")
@signed_in
def status_page() -> str:
    found = _status()
    return render_template("sync/status.html", status=found)


@bp.get("/status.json")
@public
@passive
def status_json() -> Response:
    """Polled by the header (static/js/sync.js): not a person's activity (idle log-out)."""
    return jsonify(_status().as_json())


@bp.post("/now")
@signed_in
def sync_now() -> BaseResponse | tuple[Response, int]:
    runner = _runner()
    found = _status()
    db_session().rollback()  # the sync writes on its own connections (SQLite: one writer)
    if found.state == "revoked":
        message = _("This computer was revoked by an administrator and can no longer sync.")
        started = False
    else:
        started = runner.start()
        message = _("Sync started.") if started else _("A sync is already running.")
    if request.accept_mimetypes.best == "application/json":
        body = {**_status(fresh=True).as_json(), "started": started, "message": message}
        return jsonify(body), 202 if started else 409
    flash(message, "info" if started else "warning")
    target = request.form.get("next", "")
    return redirect(target if is_safe_redirect(target) else url_for("sync_device.status_page"))


@bp.get("/unsent-changes.json")
@signed_in
def export_unsent() -> Response:
    """Every change waiting on this device, as a file for an administrator."""
    runner = _runner()
    _status()
    db_session().rollback()  # the export reads on its own connection (SQLite: one writer)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "unsent.json"
        export_outbox(runner.engine, target)
        data = target.read_bytes()
    name = f"campus-portal-unsent-changes-{datetime.now(UTC):%Y%m%d-%H%M}.json"
    return Response(
        data,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/enrol-again", methods=["GET", "POST"])
@signed_in
def enrol_again() -> str | BaseResponse:
    """A revoked copy enrols again with a new code for one of its accounts: the same device on
    the server under a new credential; its first sync then sends the changes that waited."""
    runner = _runner()
    found = _status()
    if found.state != "revoked":
        flash(_("This computer is connected to the campus server; it syncs as it is."), "info")
        return redirect(url_for("sync_device.status_page"))
    form = EnrolAgainForm()
    if form.validate_on_submit():
        db_session().rollback()  # enrolling writes on its own connection (SQLite: one writer)
        try:
            username = device.connect_to_server(
                runner, found.server_url, form.code.data or "", device_name=""
            )
        except SyncError as error:
            form.form_errors.append(str(error))
        else:
            flash(
                _(
                    "This computer is enrolled again (with the code for %(username)s): the "
                    "changes waiting here are being sent, as the bar at the top shows.",
                    username=username,
                ),
                "success",
            )
            return redirect(url_for("sync_device.status_page"))
    return render_template("sync/enrol_again.html", form=form, status=found)


@bp.get("/my-conflicts")
@signed_in
def my_conflicts() -> str:
    """The person's own changes that lost or were refused: what they are about, both values
    and what can be done (on the central server, the buttons; on a device, who to ask)."""
    state = request.args.get("state", "open")
    state = state if state in review.CONFLICT_STATES else "open"
    viewer = signed_in_user()
    page = one_page(review.conflicts_query(author_id=viewer.id, state=state))
    on_server = current_app.config["PORTAL"]["MODE"] == "server"
    status = None if on_server else _request_status()
    applied = review.recently_applied(db_session(), viewer) if state == "open" else []
    return render_template(
        "sync/my_conflicts.html",
        page=page,
        views=review.describe(db_session(), list(page.items), viewer=viewer),
        applied=applied,
        kind_labels=KIND_LABELS,
        table_labels=TABLE_LABELS,
        state=state,
        on_server=on_server,
        server_url=status.server_url if status is not None else "",
    )


@bp.get("/section-conflicts")
@roles("instructor")
def section_conflicts() -> str:
    """On the central server: conflicts on the records of the sections the instructor teaches
    (marks entered offline by their lab staff or themselves, refused or overtaken)."""
    if current_app.config["PORTAL"]["MODE"] != "server":
        abort(404)
    state = request.args.get("state", "open")
    state = state if state in review.CONFLICT_STATES else "open"
    return render_template(
        "sync/section_conflicts.html",
        views=review.section_conflicts(db_session(), signed_in_user(), state=state),
        kind_labels=KIND_LABELS,
        table_labels=TABLE_LABELS,
        state=state,
    )


@bp.post("/conflicts/<uuid:conflict_id>/resolve")
@signed_in
def resolve(conflict_id: uuid.UUID) -> BaseResponse:
    """On the central server: the author, the section's instructor or an administrator applies
    the author's value or dismisses the conflict (the service checks who may). On a device:
    its author dismisses it; the campus server learns it at the next sync."""
    if current_app.config["PORTAL"]["MODE"] == "server":
        return resolve_response(conflict_id, default_back=url_for("sync_device.my_conflicts"))
    _status()  # an enrolled copy only
    if request.form.get("action") != "keep":
        abort(400)
    conflict = review.get_conflict(db_session(), conflict_id)
    return commit_or_show(
        lambda: review.dismiss_here(
            db_session(), conflict, actor=signed_in_user(), now=datetime.now(UTC)
        ),
        message=_("Dismissed. The campus server learns it at the next sync."),
        redirect_to=url_for("sync_device.my_conflicts"),
    )
