"""Catalogue: terms, courses (search, filters, pages) and sections; the caller's own account."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from portal.api import API_V1, schemas
from portal.api.auth import authenticated_by
from portal.api.common import session, user
from portal.api.pagination import paginate
from portal.api.schemas import Extended
from portal.auth.policy import signed_in
from portal.catalogue import services
from portal.catalogue.summaries import SectionSummary, section_summaries
from portal.models import Course, Section

blp = Blueprint(
    "api_catalogue", __name__, url_prefix=API_V1, description="Terms, courses and sections"
)


@blp.route("/me", methods=["GET"])
@blp.response(200, schemas.MeSchema)
@signed_in
def me() -> Extended:
    """Who is calling (and how: session or token)."""
    return Extended(user(), authenticated_by=authenticated_by())


@blp.route("/terms", methods=["GET"])
@blp.response(200, schemas.TermListSchema)
@signed_in
def terms() -> dict[str, Any]:
    """Terms that are not archived, oldest first."""
    return {"items": services.terms(session)}


@blp.route("/courses", methods=["GET"])
@blp.arguments(schemas.CourseQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.CoursePageSchema)
@signed_in
def courses(**args: Any) -> tuple[Response, int, dict[str, str]]:
    """Search the catalogue: `q` matches code or title; `term` (a term code) keeps courses
    offered that term and lists only its sections; `department` filters by department."""
    filters = services.CatalogueFilter(
        text=args["q"], term_code=args["term"], department=args["department"]
    )
    items, meta, link = paginate(
        services.search_courses_query(session, filters), args, one_statement=True
    )
    sections = section_summaries(session, items, filters.term_code)
    body = {**meta, "items": [_course(c, sections.get(c.id, [])) for c in items]}
    # Built here rather than dumped by CoursePageSchema (still the documented shape, and a
    # test holds the two equal): a quarter of the mix, and the dump was a third of its CPU.
    return jsonify(body), 200, {"Link": link}


def _course(course: Course, sections: list[SectionSummary]) -> dict[str, Any]:
    """CourseSchema's dump of `course` with `sections`."""
    return {
        "code": course.code,
        "title": course.title,
        "description": course.description,
        "credits": course.credits,
        "department": course.department,
        "sections": [_section_summary(s) for s in sections],
    }


def _section_summary(section: SectionSummary) -> dict[str, Any]:
    """SectionSummarySchema's dump of `section` (its live meetings)."""
    return {
        "id": str(section.id),
        "label": section.label,
        "number": section.number,
        "term_code": section.term.code,
        "room": section.room,
        "capacity": section.capacity,
        "enrolled": section.enrolled_count,
        "seats_left": section.seats_left,
        "waitlist_capacity": section.waitlist_capacity,
        "waitlisted": section.waitlist_count,
        "meetings": [
            {
                "weekday": m.weekday,
                "label": m.label,
                "starts_at": m.starts_at.isoformat(),
                "ends_at": m.ends_at.isoformat(),
                "kind": m.kind,
            }
            for m in section.meetings
            if m.deleted_at is None
        ],
    }


@blp.route("/courses/<string:code>", methods=["GET"])
@blp.response(200, schemas.CourseDetailSchema)
@signed_in
def course(code: str) -> Extended:
    found = services.get_course(session, code)
    sections = services.sections_for_courses(session, [found]).get(found.id, [])
    return Extended(found, sections=sections)


@blp.route("/sections/<uuid:section_id>", methods=["GET"])
@blp.response(200, schemas.SectionDetailSchema)
@signed_in
def section(section_id: uuid.UUID) -> Section:
    return services.get_section(session, section_id)
