"""Marks and grades: a student's own; a section's gradebook and marks for its staff."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from portal.api import API_V1, present, schemas
from portal.api.common import session, user
from portal.attendance.services import student_rates
from portal.auth.policy import roles
from portal.catalogue.services import get_section
from portal.errors import NotFound
from portal.grading import services

STAFF = ("instructor", "lab_staff", "admin")

blp = Blueprint("api_grades", __name__, url_prefix=API_V1, description="Marks and grades")


@blp.route("/me/grades", methods=["GET"])
@blp.response(200, schemas.MyGradesSchema)
@roles("student")
def my_grades() -> dict[str, Any]:
    """The calling student's courses with their own marks, percentages and grades, attendance
    rate per section, and GPA per term and cumulative (the My grades page)."""
    student = user()
    results = services.student_results(session, student)
    rates = student_rates(session, student)
    transcript = services.transcript(session, student)
    courses = []
    for result in results:
        section = result.section
        rate = rates.get(section.id)
        courses.append(
            {
                "registration_id": result.registration.id,
                "section_id": section.id,
                "section_label": section.label,
                "course_title": section.course.title,
                "term_code": section.term.code,
                "credits": section.course.credits,
                "percentage": result.percentage,
                "so_far": result.so_far,
                "provisional_letter": result.provisional_letter,
                "final_grade": result.final_grade,
                "weights_problem": result.weights_problem,
                "attendance_rate": rate.rate if rate else None,
                "assessments": [
                    {**present.assessment(a), "points": points} for a, points in result.assessments
                ],
            }
        )
    return {
        "courses": courses,
        "terms": [
            {"term_code": t.term.code, "gpa": t.gpa, "credits_earned": t.credits_earned}
            for t in transcript.terms
        ],
        "cumulative_gpa": transcript.cumulative_gpa,
        "credits_earned": transcript.credits_earned,
    }


def _row(book: services.Gradebook, row: services.GradebookRow) -> dict[str, Any]:
    totals = book.shows_totals  # lab staff see lab columns only: no course totals
    return {
        "registration_id": row.registration_id,
        "student": present.person(row.student),
        "final_grade": row.final_grade,
        "percentage": row.percentage if totals else None,
        "so_far": row.so_far if totals else None,
        "letter": row.letter if totals else None,
        "marks": [
            {"assessment_id": a.id, "points": row.points.get(a.id)} for a in book.assessments
        ],
    }


@blp.route("/sections/<uuid:section_id>/gradebook", methods=["GET"])
@blp.response(200, schemas.GradebookSchema)
@roles(*STAFF)
def gradebook(section_id: uuid.UUID) -> dict[str, Any]:
    """The section's gradebook as its staff may see it (lab staff: lab assessments only)."""
    section = get_section(session, section_id)
    kinds = services.ensure_can_grade(user(), section)
    book = services.gradebook(session, section, kinds)
    return {
        "section_id": section.id,
        "section_label": section.label,
        "is_final": book.is_final,
        "kinds": list(book.kinds),
        "shows_totals": book.shows_totals,
        "weights_problem": book.weights_problem,
        "assessments": [present.assessment(a) for a in book.assessments],
        "rows": [_row(book, row) for row in book.rows],
    }


@blp.route("/assessments/<uuid:assessment_id>/marks/<uuid:student_id>", methods=["PUT"])
@blp.arguments(schemas.MarkInputSchema)
@blp.response(200, schemas.MarkSchema)
@blp.alt_response(409, response="CONFLICT")
@roles(*STAFF)
def set_mark(data: dict[str, Any], assessment_id: uuid.UUID, student_id: uuid.UUID) -> Any:
    """Enter, change or clear (`points: null`) one mark, with the gradebook's rules: staff of the
    section only (lab staff: lab assessments), at most the maximum points, and after grades are
    final only an administrator with a reason (409 otherwise)."""
    assessment = services.get_assessment(session, assessment_id)
    points = data["points"]
    raw = "" if points is None else repr(float(points))
    services.set_mark(session, user(), assessment, student_id, raw, reason=data.get("reason", ""))
    session.commit()
    book = services.gradebook(
        session,
        assessment.section,
        services.gradable_kinds(user(), assessment.section),
        student_ids=[student_id],
    )
    if not book.rows:
        raise NotFound("That student is not enrolled in this section.")
    row = _row(book, book.rows[0])
    return {
        "assessment_id": assessment.id,
        "student_id": student_id,
        "points": book.rows[0].points.get(assessment.id),
        "percentage": row["percentage"],
        "letter": row["letter"],
        "final_grade": row["final_grade"],
    }
