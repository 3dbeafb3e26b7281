"""Administration: user accounts, terms, courses and sections (admins only)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from portal.accounts import services as accounts
from portal.admin import services
from portal.api import API_V1, schemas
from portal.api.common import now, session, user
from portal.api.pagination import paginate
from portal.api.schemas import Extended
from portal.auth.policy import roles
from portal.catalogue import services as catalogue
from portal.models import Course, Section, Term, User

ADMIN = "admin"

blp = Blueprint(
    "api_admin",
    __name__,
    url_prefix=f"{API_V1}/admin",
    description="Users, terms, courses and sections (administrators)",
)


# --- Users ----------------------------------------------------------------------------------------


@blp.route("/users", methods=["GET"])
@blp.arguments(schemas.UserQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.UserPageSchema)
@roles(ADMIN)
def users(**args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Accounts by username; `q` matches username, name or student number."""
    items, meta, link = paginate(accounts.search_users_query(args["q"], args["role"]), args)
    return {**meta, "items": items}, 200, {"Link": link}


@blp.route("/users", methods=["POST"])
@blp.arguments(schemas.UserCreateSchema)
@blp.response(201, schemas.UserSchema)
@roles(ADMIN)
def create_user(data: dict[str, Any]) -> User:
    password = data.pop("password")
    created = accounts.create_user(session, accounts.UserDetails(**data), password, actor=user())
    session.commit()
    return created


@blp.route("/users/<uuid:user_id>", methods=["GET"])
@blp.response(200, schemas.UserSchema)
@roles(ADMIN)
def get_user(user_id: uuid.UUID) -> User:
    return accounts.get_user(session, user_id)


@blp.route("/users/<uuid:user_id>", methods=["PATCH"])
@blp.arguments(schemas.UserPatchSchema)
@blp.response(200, schemas.UserSchema)
@roles(ADMIN)
def update_user(data: dict[str, Any], user_id: uuid.UUID) -> User:
    """Change some fields of an account; `active: false` deactivates it (not your own)."""
    account = accounts.get_user(session, user_id)
    active = data.pop("active", None)
    if data:
        current = {
            "username": account.username,
            "full_name": account.full_name,
            "role": account.role,
            "email": account.email,
            "student_number": account.student_number,
        }
        details = accounts.UserDetails(**{**current, **data})
        accounts.update_user(session, account, details, actor=user())
    if active is not None and active != account.active:
        accounts.set_active(session, account, active, actor=user())
    session.commit()
    return account


# --- Terms ----------------------------------------------------------------------------------------


@blp.route("/terms", methods=["GET"])
@blp.arguments(schemas.ArchivedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.AdminTermListSchema)
@roles(ADMIN)
def terms(**args: Any) -> dict[str, Any]:
    """Every term, newest first, with its number of sections (`archived=true`: archived too)."""
    rows = services.list_terms(session, include_archived=args["archived"])
    return {"items": [Extended(term, section_count=count) for term, count in rows]}


@blp.route("/terms", methods=["POST"])
@blp.arguments(schemas.TermInputSchema)
@blp.response(201, schemas.AdminTermSchema)
@roles(ADMIN)
def create_term(data: dict[str, Any]) -> Term:
    term = services.create_term(session, services.TermDetails(**data), actor=user())
    session.commit()
    return term


@blp.route("/terms/<uuid:term_id>", methods=["GET"])
@blp.response(200, schemas.AdminTermSchema)
@roles(ADMIN)
def get_term(term_id: uuid.UUID) -> Term:
    return services.get_term(session, term_id)


@blp.route("/terms/<uuid:term_id>", methods=["PUT"])
@blp.arguments(schemas.TermInputSchema)
@blp.response(200, schemas.AdminTermSchema)
@roles(ADMIN)
def update_term(data: dict[str, Any], term_id: uuid.UUID) -> Term:
    term = services.get_term(session, term_id)
    services.update_term(session, term, services.TermDetails(**data), actor=user())
    session.commit()
    return term


@blp.route("/terms/<uuid:term_id>/sections", methods=["GET"])
@blp.arguments(schemas.ArchivedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.AdminSectionPageSchema)
@roles(ADMIN)
def term_sections(term_id: uuid.UUID, **args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The term's sections by course code; `q` matches course code or title."""
    term = services.get_term(session, term_id)
    query = services.sections_query(term, args["q"], include_archived=args["archived"])
    items, meta, link = paginate(query, args)
    return {**meta, "items": items}, 200, {"Link": link}


# --- Courses --------------------------------------------------------------------------------------


@blp.route("/courses", methods=["GET"])
@blp.arguments(schemas.ArchivedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.AdminCoursePageSchema)
@roles(ADMIN)
def courses(**args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    query = services.courses_query(args["q"], include_archived=args["archived"])
    items, meta, link = paginate(query, args)
    return {**meta, "items": items}, 200, {"Link": link}


@blp.route("/courses", methods=["POST"])
@blp.arguments(schemas.CourseInputSchema)
@blp.response(201, schemas.AdminCourseSchema)
@roles(ADMIN)
def create_course(data: dict[str, Any]) -> Course:
    course = services.create_course(session, services.CourseDetails(**data), actor=user())
    session.commit()
    return course


@blp.route("/courses/<uuid:course_id>", methods=["GET"])
@blp.response(200, schemas.AdminCourseSchema)
@roles(ADMIN)
def get_course(course_id: uuid.UUID) -> Course:
    return services.get_course(session, course_id)


@blp.route("/courses/<uuid:course_id>", methods=["PUT"])
@blp.arguments(schemas.CourseInputSchema)
@blp.response(200, schemas.AdminCourseSchema)
@roles(ADMIN)
def update_course(data: dict[str, Any], course_id: uuid.UUID) -> Course:
    course = services.get_course(session, course_id)
    services.update_course(session, course, services.CourseDetails(**data), actor=user())
    session.commit()
    return course


# --- Sections -------------------------------------------------------------------------------------


def _load_section(section_id: uuid.UUID) -> Section:
    return catalogue.get_section(session, section_id, include_archived=True, full=True)


@blp.route("/sections", methods=["POST"])
@blp.arguments(schemas.SectionInputSchema)
@blp.response(201, schemas.AdminSectionSchema)
@roles(ADMIN)
def create_section(data: dict[str, Any]) -> Section:
    details = services.SectionDetails(**data)
    created = services.create_section(session, details, actor=user())
    session.commit()
    return _load_section(created.id)


@blp.route("/sections/<uuid:section_id>", methods=["GET"])
@blp.response(200, schemas.AdminSectionSchema)
@roles(ADMIN)
def get_section(section_id: uuid.UUID) -> Section:
    return _load_section(section_id)


@blp.route("/sections/<uuid:section_id>", methods=["PUT"])
@blp.arguments(schemas.SectionInputSchema)
@blp.response(200, schemas.SectionUpdateResultSchema)
@roles(ADMIN)
def update_section(data: dict[str, Any], section_id: uuid.UUID) -> Extended:
    """Save a section; raising the capacity moves waitlisted students in (counted in the
    answer). Term and course cannot change."""
    section = _load_section(section_id)
    promoted = services.update_section(
        session, section, services.SectionDetails(**data), actor=user(), now=now()
    )
    session.commit()
    return Extended(_load_section(section_id), promoted_from_waitlist=promoted)


# --- Archiving ------------------------------------------------------------------------------------


def _archive(item: Term | Course | Section, archived: bool) -> dict[str, Any]:
    """Archive or restore with the pages' rule (a section's term and course must be active to
    restore it); every change is audited by the service."""
    message = services.set_archived(session, item, archived, actor=user(), now=now())
    session.commit()
    return {"archived": item.is_deleted, "message": message}


@blp.route("/terms/<uuid:term_id>/archive", methods=["POST"])
@blp.arguments(schemas.ArchiveInputSchema)
@blp.response(200, schemas.ArchiveResultSchema)
@roles(ADMIN)
def archive_term(data: dict[str, Any], term_id: uuid.UUID) -> dict[str, Any]:
    return _archive(services.get_term(session, term_id), data["archived"])


@blp.route("/courses/<uuid:course_id>/archive", methods=["POST"])
@blp.arguments(schemas.ArchiveInputSchema)
@blp.response(200, schemas.ArchiveResultSchema)
@roles(ADMIN)
def archive_course(data: dict[str, Any], course_id: uuid.UUID) -> dict[str, Any]:
    return _archive(services.get_course(session, course_id), data["archived"])


@blp.route("/sections/<uuid:section_id>/archive", methods=["POST"])
@blp.arguments(schemas.ArchiveInputSchema)
@blp.response(200, schemas.ArchiveResultSchema)
@roles(ADMIN)
def archive_section(data: dict[str, Any], section_id: uuid.UUID) -> dict[str, Any]:
    return _archive(_load_section(section_id), data["archived"])
