"""Lab sessions and taking attendance from the roster (one click per student)."""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.attendance import services
from portal.attendance.forms import LabSessionForm
from portal.auth.policy import STAFF, roles
from portal.catalogue.services import get_section
from portal.models import utcnow
from portal.web import Undo, attempt, commit_or_show, db_session, filled, signed_in_user

bp = Blueprint("attendance", __name__)


def _render_section(
    section_id: uuid.UUID, form: LabSessionForm, status: int = 200
) -> tuple[str, int]:
    section = get_section(db_session(), section_id)
    services.ensure_can_take(signed_in_user(), section)
    summary = services.section_summary(db_session(), section)
    return (
        render_template("attendance/section.html", section=section, summary=summary, form=form),
        status,
    )


@bp.get("/sections/<uuid:section_id>/attendance")
@roles(*STAFF)
def section(section_id: uuid.UUID) -> tuple[str, int]:
    return _render_section(section_id, LabSessionForm(formdata=None))


@bp.post("/sections/<uuid:section_id>/lab-sessions")
@roles(*STAFF)
def create_session(section_id: uuid.UUID) -> tuple[str, int] | Response:
    section = get_section(db_session(), section_id)
    services.ensure_can_take(signed_in_user(), section)
    form = LabSessionForm()
    if form.validate_on_submit():
        data = _session_input(form)
        done = commit_or_show(
            lambda: services.create_lab_session(db_session(), signed_in_user(), section, data),
            message=lambda lab_session: _(
                "Lab session on %(label)s added.", label=lab_session.label
            ),
            redirect_to=lambda lab_session: url_for(
                "attendance.take", lab_session_id=lab_session.id
            ),
            form=form,
        )
        if done:
            return done
    return _render_section(section_id, form, 422)


@bp.get("/lab-sessions/<uuid:lab_session_id>")
@roles(*STAFF)
def take(lab_session_id: uuid.UUID) -> str:
    lab_session = services.get_lab_session(db_session(), lab_session_id)
    services.ensure_can_take(signed_in_user(), lab_session.section)
    lines = services.sheet(db_session(), lab_session)
    return render_template(
        "attendance/take.html",
        lab_session=lab_session,
        lines=lines,
        counts=services.sheet_counts(lines),
        statuses=services.STATUS_LABELS,
    )


def _session_input(form: LabSessionForm) -> services.LabSessionInput:
    return services.LabSessionInput(
        held_on=filled(form.held_on.data),
        starts_at=filled(form.starts_at.data),
        ends_at=filled(form.ends_at.data),
        room=form.room.data or "",
    )


@bp.route("/lab-sessions/<uuid:lab_session_id>/edit", methods=["GET", "POST"])
@roles(*STAFF)
def edit_session(lab_session_id: uuid.UUID) -> str | Response | tuple[str, int]:
    lab_session = services.get_lab_session(db_session(), lab_session_id)
    services.ensure_can_take(signed_in_user(), lab_session.section)
    form = LabSessionForm(obj=lab_session)
    if form.validate_on_submit() and (
        done := commit_or_show(
            lambda: services.update_lab_session(
                db_session(), signed_in_user(), lab_session, _session_input(form)
            ),
            message=lambda changed: _("Lab session on %(label)s saved.", label=changed.label),
            redirect_to=url_for("attendance.section", section_id=lab_session.section_id),
            form=form,
        )
    ):
        return done
    page = render_template("attendance/edit_session.html", lab_session=lab_session, form=form)
    return (page, 422) if request.method == "POST" else page


@bp.post("/lab-sessions/<uuid:lab_session_id>/delete")
@roles(*STAFF)
def delete_session(lab_session_id: uuid.UUID) -> Response:
    lab_session = services.get_lab_session(db_session(), lab_session_id)
    return commit_or_show(
        lambda: services.delete_lab_session(
            db_session(), signed_in_user(), lab_session, now=utcnow()
        ),
        message=lambda label: _("Lab session on %(label)s deleted.", label=label),
        redirect_to=url_for("attendance.section", section_id=lab_session.section_id),
        undo=Undo(url_for("attendance.restore_session", lab_session_id=lab_session_id)),
    )


@bp.post("/lab-sessions/<uuid:lab_session_id>/restore")
@roles(*STAFF)
def restore_session(lab_session_id: uuid.UUID) -> Response:
    """The Undo of a deletion."""
    lab_session = services.get_lab_session(db_session(), lab_session_id, include_deleted=True)
    return commit_or_show(
        lambda: services.restore_lab_session(db_session(), signed_in_user(), lab_session),
        message=lambda restored: _(
            "Lab session on %(label)s restored; its attendance records count again.",
            label=restored.label,
        ),
        redirect_to=url_for("attendance.section", section_id=lab_session.section_id),
    )


@bp.post("/lab-sessions/<uuid:lab_session_id>/students/<uuid:student_id>")
@roles(*STAFF)
def mark(lab_session_id: uuid.UUID, student_id: uuid.UUID) -> str | Response:
    lab_session = services.get_lab_session(db_session(), lab_session_id)
    status = request.form.get("status", "")
    _, problem = attempt(
        lambda: services.record_attendance(
            db_session(), signed_in_user(), lab_session, student_id, status
        )
    )
    error = str(problem) if problem else None
    if request.headers.get("HX-Request") != "true":
        if error:
            flash(error, "danger")
        return redirect(
            url_for("attendance.take", lab_session_id=lab_session_id) + f"#student-{student_id}"
        )
    lines = services.sheet(db_session(), lab_session)
    line = next((item for item in lines if item.student.id == student_id), None)
    return render_template(
        "attendance/_mark_response.html",
        lab_session=lab_session,
        line=line,
        counts=services.sheet_counts(lines),
        total_students=len(lines),
        statuses=services.STATUS_LABELS,
        error=error,
    )


@bp.post("/lab-sessions/<uuid:lab_session_id>/mark-remaining")
@roles(*STAFF)
def mark_remaining(lab_session_id: uuid.UUID) -> Response:
    lab_session = services.get_lab_session(db_session(), lab_session_id)
    count = services.mark_unrecorded(db_session(), signed_in_user(), lab_session, "present")
    db_session().commit()
    flash(_("%(count)s student(s) without a record marked present.", count=count), "success")
    return redirect(url_for("attendance.take", lab_session_id=lab_session_id))
