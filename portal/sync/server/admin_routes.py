"""The central server's sync pages for administrators: Devices (enrolment codes, revoking)
and Conflicts (review, apply the other value, mark resolved)."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.auth.policy import roles
from portal.errors import ValidationError
from portal.models import CONFLICT_KINDS, utcnow
from portal.sync import review
from portal.sync.forms import DeviceNameForm, EnrolmentCodeForm
from portal.sync.presentation import KIND_LABELS, TABLE_LABELS
from portal.sync.resolution import resolve_response
from portal.sync.server import devices as server_devices
from portal.sync.server import enrolment
from portal.web import attempt, commit_or_show, db_session, one_page, show_on_form, signed_in_user

bp = Blueprint("sync_admin", __name__, url_prefix="/admin/sync")

ADMIN = "admin"


@bp.before_request
def _server_only() -> None:
    """Devices enrol with the central server; a desktop copy has none of these pages."""
    if current_app.config["PORTAL"]["MODE"] != "server":
        abort(404)


# --- Devices -------------------------------------------------------------------------------


def _devices_page(form: EnrolmentCodeForm, issued: server_devices.IssuedCode | None = None) -> str:
    return render_template(
        "sync/devices.html",
        rows=server_devices.device_overview(db_session()),
        form=form,
        issued=issued,
    )


@bp.get("/devices")
@roles(ADMIN)
def devices() -> str:
    return _devices_page(EnrolmentCodeForm())


@bp.post("/enrolment-codes")
@roles(ADMIN)
def create_code() -> str:
    """The code is shown once, in this answer; only its hash is kept."""
    form = EnrolmentCodeForm()
    if not form.validate_on_submit():
        # The account is looked up (read only) even when the days are wrong, so that both
        # problems are shown in the same answer; nothing is created.
        if "csrf_token" not in form.errors and form.username.data and not form.username.errors:
            try:
                server_devices.enrolment_account(db_session(), form.username.data)
            except ValidationError as unknown:
                show_on_form(form, unknown)
        return _devices_page(form)
    issued, error = attempt(
        lambda: server_devices.issue_enrolment_code(
            db_session(),
            form.username.data or "",
            actor=signed_in_user(),
            now=utcnow(),
            valid_days=form.valid_days.data,
        )
    )
    if error is not None:
        show_on_form(form, error)
        return _devices_page(form)
    return _devices_page(EnrolmentCodeForm(formdata=None), issued)


@bp.post("/devices/<uuid:device_id>/name")
@roles(ADMIN)
def rename(device_id: uuid.UUID) -> Response:
    device = server_devices.get_device(db_session(), device_id)
    form = DeviceNameForm()
    return commit_or_show(
        lambda: server_devices.rename_device(
            db_session(), device, form.name.data or "", actor=signed_in_user()
        ),
        message=_("The device is renamed."),
        redirect_to=url_for("sync_admin.devices"),
    )


@bp.post("/devices/<uuid:device_id>/revoke")
@roles(ADMIN)
def revoke(device_id: uuid.UUID) -> Response:
    device = server_devices.get_device(db_session(), device_id)
    return commit_or_show(
        lambda: enrolment.revoke_device(db_session(), device, actor=signed_in_user(), now=utcnow()),
        message=_(
            "Device %(name)s is revoked: it will be refused at its next sync. Changes it had "
            "not sent stay on it; to let it send them, create an enrolment code for one of its "
            "accounts, with which that computer enrols again.",
            name=device.name,
        ),
        redirect_to=url_for("sync_admin.devices"),
    )


# --- Conflicts -----------------------------------------------------------------------------


@bp.get("/conflicts")
@roles(ADMIN)
def conflicts() -> str:
    kind = request.args.get("kind", "")
    kind = kind if kind in CONFLICT_KINDS else ""
    table = request.args.get("table", "")[:64]
    state = request.args.get("state", "open")
    state = state if state in review.CONFLICT_STATES else "open"
    page = one_page(review.conflicts_query(kind=kind, table=table, state=state))
    items = list(page.items)
    return render_template(
        "sync/conflicts.html",
        page=page,
        views=review.describe(db_session(), items, viewer=signed_in_user()),
        device_names=review.device_names(db_session(), (c.device_id for c in items)),
        tables=review.conflict_tables(db_session()),
        kinds=CONFLICT_KINDS,
        kind_labels=KIND_LABELS,
        table_labels=TABLE_LABELS,
        filters={"kind": kind, "table": table, "state": state},
    )


@bp.post("/conflicts/<uuid:conflict_id>/resolve")
@roles(ADMIN)
def resolve(conflict_id: uuid.UUID) -> Response:
    return resolve_response(conflict_id, default_back=url_for("sync_admin.conflicts"))
