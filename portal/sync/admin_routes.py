"""The central server's sync pages for administrators: Devices (enrolment codes, revoking)
and Conflicts (review, apply the other value, mark resolved)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.policy import roles
from portal.errors import PortalError
from portal.extensions import db
from portal.models import CONFLICT_KINDS
from portal.sync import services
from portal.sync.forms import EnrolmentCodeForm
from portal.sync.presentation import KIND_LABELS, TABLE_LABELS

bp = Blueprint("sync_admin", __name__, url_prefix="/admin/sync")

ADMIN = "admin"


def _now() -> datetime:
    return datetime.now(UTC)


@bp.before_request
def _server_only() -> None:
    """Devices enrol with the central server; a desktop copy has none of these pages."""
    if current_app.config["PORTAL"]["MODE"] != "server":
        abort(404)


# --- Devices -------------------------------------------------------------------------------


def _devices_page(form: EnrolmentCodeForm, issued: services.IssuedCode | None = None) -> str:
    return render_template(
        "sync/devices.html",
        rows=services.device_overview(db.session),
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
        return _devices_page(form)
    try:
        issued = services.issue_enrolment_code(
            db.session,
            form.username.data or "",
            actor=current_user,  # type: ignore[arg-type]
            now=_now(),
            valid_days=form.valid_days.data or 7,
        )
    except PortalError as error:
        db.session.rollback()
        form.username.errors = [*form.username.errors, str(error)]
        return _devices_page(form)
    db.session.commit()
    return _devices_page(EnrolmentCodeForm(formdata=None), issued)


@bp.post("/devices/<uuid:device_id>/revoke")
@roles(ADMIN)
def revoke(device_id: uuid.UUID) -> Response:
    device = services.get_device(db.session, device_id)
    try:
        services.revoke_device(db.session, device, actor=current_user, now=_now())  # type: ignore[arg-type]
    except PortalError as error:
        db.session.rollback()
        flash(str(error), "danger")
    else:
        db.session.commit()
        flash(
            f"Device {device.name} is revoked: it will be refused at its next sync. Changes it "
            "had not sent stay on it and can be exported there.",
            "success",
        )
    return redirect(url_for("sync_admin.devices"))


# --- Conflicts -----------------------------------------------------------------------------


@bp.get("/conflicts")
@roles(ADMIN)
def conflicts() -> str:
    kind = request.args.get("kind", "")
    kind = kind if kind in CONFLICT_KINDS else ""
    table = request.args.get("table", "")[:64]
    state = request.args.get("state", "open")
    state = state if state in services.CONFLICT_STATES else "open"
    page = db.paginate(
        services.conflicts_query(kind=kind, table=table, state=state),
        per_page=current_app.config["PAGE_SIZE"],
        error_out=False,
    )
    items = list(page.items)
    return render_template(
        "sync/conflicts.html",
        page=page,
        labels=services.describe_conflicts(db.session, items),
        device_names=services.device_names(db.session, (c.device_id for c in items)),
        tables=services.conflict_tables(db.session),
        kinds=CONFLICT_KINDS,
        kind_labels=KIND_LABELS,
        table_labels=TABLE_LABELS,
        filters={"kind": kind, "table": table, "state": state},
        can_apply=services.can_apply_lost_value,
    )


@bp.post("/conflicts/<uuid:conflict_id>/resolve")
@roles(ADMIN)
def resolve(conflict_id: uuid.UUID) -> Response:
    conflict = services.get_conflict(db.session, conflict_id)
    apply_other = request.form.get("action") == "apply"
    try:
        services.resolve_conflict(
            db.session,
            conflict,
            actor=current_user,  # type: ignore[arg-type]
            apply_lost_value=apply_other,
            now=_now(),
        )
    except PortalError as error:
        db.session.rollback()
        flash(str(error), "danger")
    else:
        db.session.commit()
        flash(
            "The other value is in place and the conflict is resolved."
            if apply_other
            else "The conflict is marked resolved; the current value stays.",
            "success",
        )
    back = request.form.get("back", "")
    if not back.startswith("/admin/sync/conflicts"):
        back = url_for("sync_admin.conflicts")
    return redirect(back)
