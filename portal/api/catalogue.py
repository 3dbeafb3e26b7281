"""Catalogue: terms, courses (search, filters, pages) and sections; the caller's own account."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from portal.api import API_V1, schemas
from portal.api.auth import authenticated_by
from portal.api.common import session, user
from portal.api.pagination import paginate
from portal.api.schemas import Extended
from portal.auth.policy import signed_in
from portal.catalogue import services
from portal.models import Section

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
def courses(**args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Search the catalogue: `q` matches code or title; `term` (a term code) keeps courses
    offered that term and lists only its sections; `department` filters by department."""
    filters = services.CatalogueFilter(
        text=args["q"], term_code=args["term"], department=args["department"]
    )
    items, meta, link = paginate(
        services.search_courses_query(session, filters), args, one_statement=True
    )
    sections = services.sections_for_courses(session, items, filters.term_code)
    body = {**meta, "items": [Extended(c, sections=sections.get(c.id, [])) for c in items]}
    return body, 200, {"Link": link}


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
