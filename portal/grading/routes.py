"""Gradebook, assessments, finalising, the grade scale, and students' grades and transcripts."""

from __future__ import annotations

import uuid
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response
from wtforms import Field

from portal.attendance import services as attendance
from portal.auth import access
from portal.auth.policy import STAFF, roles
from portal.catalogue.services import get_section
from portal.errors import Busy, FieldErrors, ValidationError
from portal.grading import services
from portal.grading.calculation import WeightedItem, weights_problem
from portal.grading.forms import AssessmentForm, GradeScaleForm, scale_field_name
from portal.grading.scale import GRADE_POINTS
from portal.models import Assessment, GradeScale, User, utcnow
from portal.sync import review as sync_review
from portal.web import Undo, attempt, commit_form, commit_or_show, db_session, signed_in_user

bp = Blueprint("grading", __name__)

MANAGERS = ("instructor", "admin")


@bp.app_template_filter("points")
def _points(value: float | None) -> str:
    """7.5 -> '7.5', 20.0 -> '20', None -> ''."""
    return "" if value is None else f"{value:g}"


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _mark_key(student_id: uuid.UUID, assessment_id: uuid.UUID) -> str:
    return f"m.{student_id}.{assessment_id}"


# --- Gradebook ------------------------------------------------------------------------------------


def _render_gradebook(
    section_id: uuid.UUID,
    typed: dict[tuple[uuid.UUID, uuid.UUID], str] | None = None,
    errors: dict[tuple[uuid.UUID, uuid.UUID], str] | None = None,
    status: int = 200,
    busy: Busy | None = None,
) -> tuple[str, int, dict[str, str]]:
    """The grid; with `busy` (a cell waited too long for another change) the answer is a 503
    with Retry-After, the typed values kept."""
    section = get_section(db_session(), section_id)
    kinds = services.ensure_can_grade(signed_in_user(), section)
    book = services.gradebook(db_session(), section, kinds)
    page = render_template(
        "grading/gradebook.html",
        book=book,
        typed=typed or {},
        errors=errors or {},
        can_manage=access.may_manage(signed_in_user(), section),
        can_edit=not book.is_final or signed_in_user().role == "admin",
        finalise_warnings=services.finalise_warnings(book, now=utcnow()),
        sync_notes=_sync_notes(section.id),
        missing_token=services.missing_marks_token(book),
    )
    if busy is not None:
        return page, busy.status_code, {"Retry-After": str(busy.retry_after)}
    return page, status, {}


def _sync_notes(section_id: uuid.UUID) -> dict[tuple[uuid.UUID, uuid.UUID], Any]:
    """Marks entered offline that did not go through, by cell, each with the page where the
    reader can act on it."""
    notes = sync_review.open_on_marks(db_session(), section_id)
    user = signed_in_user()
    on_server = current_app.config["PORTAL"]["MODE"] == "server"
    for note in notes.values():
        if note.conflict.author_id == user.id or not on_server:
            note.link = url_for("sync_device.my_conflicts")
        elif user.role == "admin":
            note.link = url_for("sync_admin.conflicts", table="marks")
        elif sync_review.instructs(user, note):
            note.link = url_for("sync_device.section_conflicts")
    return notes


@bp.get("/sections/<uuid:section_id>/gradebook")
@roles(*STAFF)
def gradebook(section_id: uuid.UUID) -> tuple[str, int, dict[str, str]]:
    return _render_gradebook(section_id)


@bp.post("/sections/<uuid:section_id>/gradebook")
@roles(*STAFF)
def save_gradebook(section_id: uuid.UUID) -> tuple[str, int, dict[str, str]] | Response:
    """Save every changed cell of the grid; cells with errors keep what was typed."""
    actor = signed_in_user()
    section = get_section(db_session(), section_id)
    kinds = services.ensure_can_grade(actor, section)
    book = services.gradebook(db_session(), section, kinds)
    reason = request.form.get("reason", "")
    typed: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
    errors: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
    saved = 0
    busy: Busy | None = None
    for row in book.rows:
        for assessment in book.assessments:
            key = _mark_key(row.student.id, assessment.id)
            if key not in request.form:
                continue
            raw = request.form[key]
            try:
                points = services.parse_points(raw)
                if points == services.stored_points(row.points.get(assessment.id)):
                    continue
                if busy is not None:
                    raise busy  # one wait is enough: the rest are kept to be sent again
                with db_session().begin_nested():
                    services.set_mark(
                        db_session(), actor, assessment, row.student.id, points, reason=reason
                    )
                saved += 1
            except (ValidationError, services.GradesLocked, Busy) as error:
                typed[(row.student.id, assessment.id)] = raw
                errors[(row.student.id, assessment.id)] = str(error)
                if isinstance(error, Busy):
                    busy = error
    db_session().commit()
    if errors:
        flash(
            _(
                "%(saved)s mark(s) saved. %(errors)s could not be saved: see the highlighted "
                "cells.",
                saved=saved,
                errors=len(errors),
            ),
            "danger",
        )
        return _render_gradebook(section_id, typed, errors, status=422, busy=busy)
    flash(
        _("%(saved)s mark(s) saved.", saved=saved) if saved else _("Nothing had changed."),
        "success",
    )
    return redirect(url_for("grading.gradebook", section_id=section_id))


def _cell_from_form() -> tuple[uuid.UUID, uuid.UUID, str]:
    """(student id, assessment id, typed value) from the one `m.<student>.<assessment>` field."""
    for key, value in request.form.items():
        if key.startswith("m."):
            try:
                _, student, assessment = key.split(".")
                return uuid.UUID(student), uuid.UUID(assessment), value
            except ValueError:
                break
    abort(400)


@bp.post("/sections/<uuid:section_id>/gradebook/cell")
@roles(*STAFF)
def save_mark(
    section_id: uuid.UUID,
) -> tuple[str, int] | tuple[str, int, dict[str, str]] | Response:
    """One cell (htmx on change). The response is the cell again, with the typed value kept."""
    actor = signed_in_user()
    section = get_section(db_session(), section_id)
    kinds = services.ensure_can_grade(actor, section)
    student_id, assessment_id, raw = _cell_from_form()
    assessment = services.get_assessment(db_session(), assessment_id)
    if assessment.section_id != section.id:
        abort(404)
    _saved, problem = attempt(
        lambda: services.set_mark(
            db_session(),
            actor,
            assessment,
            student_id,
            services.parse_points(raw),
            reason=request.form.get("reason", ""),
        )
    )
    error = str(problem) if problem else None
    if not _is_htmx():
        if error:
            flash(error, "danger")
            return _render_gradebook(
                section_id,
                {(student_id, assessment_id): raw},
                {(student_id, assessment_id): error},
                422,
                busy=problem if isinstance(problem, Busy) else None,
            )
        flash(_("Mark saved."), "success")
        return redirect(url_for("grading.gradebook", section_id=section_id))
    book = services.gradebook(db_session(), section, kinds, student_ids=[student_id])
    if not book.rows:
        abort(404)
    # htmx swaps only 2xx answers: a refused value comes back as 200 with the error by the cell.
    return (
        render_template(
            "grading/_cell_response.html",
            book=book,
            row=book.rows[0],
            assessment=assessment,
            typed=raw if error else None,
            error=error,
            saved=error is None,
            can_edit=not book.is_final or actor.role == "admin",
        ),
        200,
    )


@bp.get("/sections/<uuid:section_id>/finalise/check")
@roles(*MANAGERS)
def finalise_check(section_id: uuid.UUID) -> Response:
    """What the finalise confirmation says, from the marks as they are now (the page asks
    when the button is pressed; what it showed when it was loaded may be out of date)."""
    section = get_section(db_session(), section_id)
    check = services.finalise_check(db_session(), signed_in_user(), section, now=utcnow())
    return jsonify(
        question=check.question, warnings=check.warnings, missing_token=check.missing_token
    )


@bp.post("/sections/<uuid:section_id>/finalise")
@roles(*MANAGERS)
def finalise(section_id: uuid.UUID) -> Response:
    section = get_section(db_session(), section_id)
    confirmed = request.form.get("missing_marks", "")
    return commit_or_show(
        lambda: services.finalise_section(
            db_session(), signed_in_user(), section, now=utcnow(), confirmed_missing=confirmed
        ),
        message=_("Grades for %(label)s are final and the marks are locked.", label=section.label),
        redirect_to=url_for("grading.gradebook", section_id=section_id),
    )


# --- Assessments ----------------------------------------------------------------------------------


def _timezone(name: str | None) -> tzinfo:
    """The browser's time zone from the form, or UTC when none (no JavaScript) or unknown."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _assessment_input(form: AssessmentForm) -> services.AssessmentInput:
    due = form.due_at.data
    return services.AssessmentInput(
        name=form.name.data or "",
        kind=form.kind.data or "",
        weight=float(form.weight.data if form.weight.data is not None else -1),
        max_points=float(form.max_points.data or 0),
        # Typed in the person's own time zone; stored in UTC.
        due_at=due.replace(tzinfo=_timezone(form.timezone.data)).astimezone(UTC) if due else None,
    )


def _assessment_form_valid(form: AssessmentForm) -> bool:
    """True when a submitted form's numbers parse. When they do not, the service's rules are
    still checked on the rest, so that every problem is shown in one round."""
    if not form.is_submitted():
        return False
    if form.validate():
        return True
    for name, message in services.assessment_problems(_assessment_input(form)).items():
        field = getattr(form, name)
        if not field.errors:
            field.errors = [message]
    return False


@bp.route("/sections/<uuid:section_id>/assessments", methods=["GET", "POST"])
@roles(*MANAGERS)
def assessments(section_id: uuid.UUID) -> str | Response:
    section = get_section(db_session(), section_id)
    services.ensure_can_manage(signed_in_user(), section)
    form = AssessmentForm()
    if _assessment_form_valid(form) and (
        done := commit_or_show(
            lambda: services.create_assessment(
                db_session(), signed_in_user(), section, _assessment_input(form)
            ),
            message=lambda created: _("Assessment %(name)s added.", name=repr(created.name)),
            redirect_to=url_for("grading.assessments", section_id=section_id),
            form=form,
        )
    ):
        return done
    return _render_assessments(section_id, form, None)


def _render_assessments(
    section_id: uuid.UUID, form: AssessmentForm, editing: Assessment | None
) -> str:
    section = get_section(db_session(), section_id)
    items = services.section_assessments(db_session(), section.id)
    return render_template(
        "grading/assessments.html",
        section=section,
        assessments=items,
        form=form,
        editing=editing,
        total_weight=sum(a.weight for a in items),
        weights_problem=weights_problem(
            [WeightedItem(a.id, a.weight, a.max_points) for a in items]
        ),
        is_final=services.finalisation_of(db_session(), section.id) is not None,
    )


@bp.route("/assessments/<uuid:assessment_id>/edit", methods=["GET", "POST"])
@roles(*MANAGERS)
def edit_assessment(assessment_id: uuid.UUID) -> str | Response:
    assessment = services.get_assessment(db_session(), assessment_id)
    services.ensure_can_manage(signed_in_user(), assessment.section)
    form = AssessmentForm(obj=assessment)
    if assessment.due_at:
        # The field shows UTC; portal.js shows it in the browser's zone (data-utc-value).
        form.due_at.render_kw = {"data-utc-value": assessment.due_at.isoformat()}
        if request.method == "GET":
            form.due_at.data = assessment.due_at.replace(tzinfo=None)
    if _assessment_form_valid(form) and (
        done := commit_or_show(
            lambda: services.update_assessment(
                db_session(), signed_in_user(), assessment, _assessment_input(form)
            ),
            message=lambda saved: _("Assessment %(name)s saved.", name=repr(saved.name)),
            redirect_to=url_for("grading.assessments", section_id=assessment.section_id),
            form=form,
        )
    ):
        return done
    return _render_assessments(assessment.section_id, form, assessment)


@bp.post("/assessments/<uuid:assessment_id>/delete")
@roles(*MANAGERS)
def delete_assessment(assessment_id: uuid.UUID) -> Response:
    assessment = services.get_assessment(db_session(), assessment_id)
    name = assessment.name
    return commit_or_show(
        lambda: services.delete_assessment(
            db_session(), signed_in_user(), assessment, now=utcnow()
        ),
        message=_("Assessment %(name)s removed.", name=repr(name)),
        redirect_to=url_for("grading.assessments", section_id=assessment.section_id),
        undo=Undo(url_for("grading.restore_assessment", assessment_id=assessment_id)),
    )


@bp.post("/assessments/<uuid:assessment_id>/restore")
@roles(*MANAGERS)
def restore_assessment(assessment_id: uuid.UUID) -> Response:
    """The Undo of a removal."""
    assessment = services.get_assessment(db_session(), assessment_id, include_removed=True)
    return commit_or_show(
        lambda: services.restore_assessment(db_session(), signed_in_user(), assessment),
        message=lambda restored: _(
            "Assessment %(name)s restored; its marks count again.", name=repr(restored.name)
        ),
        redirect_to=url_for("grading.assessments", section_id=assessment.section_id),
    )


# --- Grade scale ----------------------------------------------------------------------------------


def _save_scale(fields: list[tuple[str, Field]]) -> GradeScale:
    """Save the scale as typed: a letter left empty is left out; one that is not a number is
    passed as typed, so the scale's rules are checked on what the person sees. A letter's own
    problem is shown beside its input (once, when the input's check already said it)."""
    thresholds: list[tuple[str, float | str]] = []
    for letter, scale_field in fields:
        typed = (scale_field.raw_data or [""])[0].strip()
        if scale_field.data is not None:
            thresholds.append((letter, float(scale_field.data)))
        elif typed:
            thresholds.append((letter, typed))
    try:
        return services.save_default_scale(db_session(), signed_in_user(), thresholds)
    except FieldErrors as error:
        raise FieldErrors(
            {scale_field_name(k) if k in GRADE_POINTS else k: v for k, v in error.errors.items()}
        ) from error


@bp.route("/grade-scale", methods=["GET", "POST"])
@roles("admin")
def scale() -> str | Response:
    form = GradeScaleForm()
    fields = [(letter, getattr(form, scale_field_name(letter))) for letter in GRADE_POINTS]
    if request.method == "GET":
        current = dict(services.active_scale(db_session()))
        for letter, scale_field in fields:
            minimum = current.get(letter)
            # 93 rather than 93.0 in the input
            scale_field.data = (
                int(minimum) if minimum is not None and minimum.is_integer() else minimum
            )
    if done := commit_form(
        form,
        lambda: _save_scale(fields),
        message=_("Grade scale saved. It applies to grades finalised from now on."),
        redirect_to=url_for("grading.scale"),
    ):
        return done
    return render_template("grading/scale.html", form=form, fields=fields)


# --- Students -------------------------------------------------------------------------------------


@bp.get("/grades")
@roles("student")
def my_grades() -> str:
    student = signed_in_user()
    enrolled = services.enrolled_registrations(db_session(), student)
    results = services.student_results(db_session(), student, enrolled)
    rates = attendance.student_rates(db_session(), student)
    book = services.transcript(db_session(), student, enrolled)
    return render_template("grading/my_grades.html", results=results, rates=rates, transcript=book)


@bp.get("/transcript")
@roles("student")
def my_transcript() -> str:
    return _render_transcript(signed_in_user())


@bp.get("/students/<uuid:student_id>/transcript")
@roles("admin")
def transcript(student_id: uuid.UUID) -> str:
    return _render_transcript(services.get_student(db_session(), student_id))


def _render_transcript(student: User) -> str:
    context: dict[str, Any] = {
        "transcript": services.transcript(db_session(), student),
        "printed_at": utcnow(),
    }
    return render_template("grading/transcript.html", **context)
