"""Marks and grades: a student's own; a section's gradebook and marks for its staff."""

from __future__ import annotations

import uuid
from typing import Any

from flask_babel import gettext as _
from flask_smorest import Blueprint

from portal.api import API_V1, schemas
from portal.api.common import session, user
from portal.api.schemas import Extended
from portal.attendance.services import student_rates
from portal.auth import access
from portal.auth.policy import roles
from portal.catalogue.services import get_section
from portal.errors import NotFound
from portal.grading import services
from portal.web import commit_keeping_loaded

STAFF = ("instructor", "lab_staff", "admin")

blp = Blueprint("api_grades", __name__, url_prefix=API_V1, description="Marks and grades")


@blp.route("/me/grades", methods=["GET"])
@blp.response(200, schemas.MyGradesSchema)
@roles("student")
def my_grades() -> Extended:
    """The calling student's courses with their own marks, percentages and grades, attendance
    rate per section, and GPA per term and cumulative (the My grades page)."""
    student = user()
    enrolled = services.enrolled_registrations(session, student)
    rates = student_rates(session, student)
    courses = [
        Extended(
            result,
            attendance_rate=rates[result.section.id].rate if result.section.id in rates else None,
            assessments=[Extended(a, points=points) for a, points in result.assessments],
        )
        for result in services.student_results(session, student, enrolled)
    ]
    return Extended(services.transcript(session, student, enrolled), courses=courses)


def _row(book: services.Gradebook, row: services.GradebookRow) -> Extended:
    marks = [{"assessment_id": a.id, "points": row.points.get(a.id)} for a in book.assessments]
    if book.shows_totals:
        return Extended(row, marks=marks)
    # Lab staff see the lab columns only: no course totals.
    return Extended(row, marks=marks, percentage=None, so_far=None, letter=None)


@blp.route("/sections/<uuid:section_id>/gradebook", methods=["GET"])
@blp.response(200, schemas.GradebookSchema)
@roles(*STAFF)
def gradebook(section_id: uuid.UUID) -> Extended:
    """The section's gradebook as its staff may see it (lab staff: lab assessments only)."""
    section = get_section(session, section_id)
    kinds = services.ensure_can_grade(user(), section)
    book = services.gradebook(session, section, kinds)
    return Extended(book, rows=[_row(book, row) for row in book.rows])


@blp.route("/assessments/<uuid:assessment_id>/marks/<uuid:student_id>", methods=["PUT"])
@blp.arguments(schemas.MarkInputSchema)
@blp.response(200, schemas.MarkSchema)
@blp.alt_response(409, response="CONFLICT")
@roles(*STAFF)
def set_mark(data: dict[str, Any], assessment_id: uuid.UUID, student_id: uuid.UUID) -> Any:
    """Enter, change or clear (`points: null`) one mark, with the gradebook's rules: staff of the
    section only (lab staff: lab assessments), at most the maximum points, at most 2 decimal
    places (more is refused with 422, never rounded), and after grades are final only an
    administrator with a reason (409 otherwise)."""
    assessment = services.get_assessment(session, assessment_id)
    points = services.points_from_number(data["points"])
    services.set_mark(
        session, user(), assessment, student_id, points, reason=data.get("reason", "")
    )
    # The row as this transaction leaves it (its locks still held), then the commit: nothing
    # the answer shows is read again.
    book = services.gradebook(
        session,
        assessment.section,
        access.gradable_kinds(user(), assessment.section),
        student_ids=[student_id],
    )
    if not book.rows:
        raise NotFound(_("That student is not enrolled in this section."))
    commit_keeping_loaded()
    shown = book.rows[0]
    return Extended(
        _row(book, shown),
        assessment_id=assessment.id,
        student_id=student_id,
        points=shown.points.get(assessment.id),
    )
