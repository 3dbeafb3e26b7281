"""Administration: user accounts, terms, courses and sections (admins only).

Users, terms, courses and sections share one shape of routes (create; read and change one;
archive and restore, except users), made by `administer` from what each declares: its schemas,
its loader and its service calls. The services validate, refuse and audit; the lists differ
(filters, counts) and are written out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema

from portal.accounts import services as accounts
from portal.admin import services
from portal.api import API_V1, schemas
from portal.api.common import now, session, user
from portal.api.pagination import page_answer
from portal.api.schemas import Extended
from portal.auth.policy import roles
from portal.catalogue import services as catalogue
from portal.models import Section, User

ADMIN = "admin"

blp = Blueprint(
    "api_admin",
    __name__,
    url_prefix=f"{API_V1}/admin",
    description="Users, terms, courses and sections (administrators)",
)


@dataclass(frozen=True)
class Administered:
    """What one administered resource declares (see `administer`)."""

    name: str  # endpoints create_<name>, get_<name>, update_<name>, archive_<name>
    collection: str  # "/terms"
    item: str  # "/terms/<uuid:term_id>"
    schema: type[Schema]  # the answer
    create_input: type[Schema]
    load: Callable[[uuid.UUID], Any]  # the row, or NotFound (404)
    create: Callable[[dict[str, Any]], Any]  # the new row, audited by the service
    # Change the row; returns values the answer adds to the row's own (none: {}). Its
    # docstring documents the operation.
    update: Callable[[Any, dict[str, Any]], dict[str, Any]]
    update_method: str = "PUT"
    update_input: type[Schema] | None = None  # default: create_input
    update_answer: type[Schema] | None = None  # default: schema
    archivable: bool = True


def administer(resource: Administered) -> None:
    """The resource's routes: `POST collection` (201), `GET item`, `PUT` or `PATCH item` and,
    when archivable, `POST item/archive`. Each answer is the row as loaded after the commit."""

    def create(data: dict[str, Any]) -> Any:
        created = resource.create(data)
        session.commit()
        return resource.load(created.id)

    def read(**path: uuid.UUID) -> Any:
        return resource.load(*path.values())

    def update(data: dict[str, Any], **path: uuid.UUID) -> Extended:
        (item_id,) = path.values()
        added = resource.update(resource.load(item_id), data)
        session.commit()
        return Extended(resource.load(item_id), **added)

    def archive(data: dict[str, Any], **path: uuid.UUID) -> dict[str, Any]:
        # The pages' rule (a section's term and course must be active to restore it); every
        # change is audited by the service.
        item = resource.load(*path.values())
        message = services.set_archived(session, item, data["archived"], actor=user(), now=now())
        session.commit()
        return {"archived": item.is_deleted, "message": message}

    update.__doc__ = resource.update.__doc__

    def route(
        verb: str,
        path: str,
        method: str,
        view: Callable[..., Any],
        answer: type[Schema],
        *,
        status: int = 200,
        arguments: type[Schema] | None = None,
    ) -> None:
        documented = blp.response(status, answer)(roles(ADMIN)(view))
        if arguments is not None:
            documented = blp.arguments(arguments)(documented)
        blp.route(path, methods=[method], endpoint=f"{verb}_{resource.name}")(documented)

    item, answer = resource.item, resource.schema
    route(
        "create",
        resource.collection,
        "POST",
        create,
        answer,
        status=201,
        arguments=resource.create_input,
    )
    route("get", item, "GET", read, answer)
    route(
        "update",
        item,
        resource.update_method,
        update,
        resource.update_answer or answer,
        arguments=resource.update_input or resource.create_input,
    )
    if resource.archivable:
        route(
            "archive",
            f"{item}/archive",
            "POST",
            archive,
            schemas.ArchiveResultSchema,
            arguments=schemas.ArchiveInputSchema,
        )


def catalogue_item(
    name: str,
    schema: type[Schema],
    create_input: type[Schema],
    details: Callable[..., Any],
    *,
    get: Callable[..., Any],
    create: Callable[..., Any],
    update: Callable[..., Any],
) -> Administered:
    """A term or a course: `/<name>s`, its details from the input as they are, and the
    service's get, create and update."""

    def change(row: Any, data: dict[str, Any]) -> dict[str, Any]:
        update(session, row, details(**data), actor=user())
        return {}

    return Administered(
        name=name,
        collection=f"/{name}s",
        item=f"/{name}s/<uuid:{name}_id>",
        schema=schema,
        create_input=create_input,
        load=lambda item_id: get(session, item_id),
        create=lambda data: create(session, details(**data), actor=user()),
        update=change,
    )


# --- Users ----------------------------------------------------------------------------------------


@blp.route("/users", methods=["GET"])
@blp.arguments(schemas.UserQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.UserPageSchema)
@roles(ADMIN)
def users(**args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Accounts by username; `q` matches username, name or student number."""
    return page_answer(accounts.search_users_query(args["q"], args["role"]), args)


def _create_user(data: dict[str, Any]) -> User:
    details = {name: value for name, value in data.items() if name != "password"}
    return accounts.create_user(
        session, accounts.UserDetails(**details), data["password"], actor=user()
    )


def _update_user(account: User, data: dict[str, Any]) -> dict[str, Any]:
    """Change some fields of an account; `active: false` deactivates it (not your own)."""
    changes = {name: value for name, value in data.items() if name != "active"}
    if changes:
        current = {
            "username": account.username,
            "full_name": account.full_name,
            "role": account.role,
            "email": account.email,
            "student_number": account.student_number,
        }
        details = accounts.UserDetails(**{**current, **changes})
        accounts.update_user(session, account, details, actor=user())
    active = data.get("active")
    if active is not None and active != account.active:
        accounts.set_active(session, account, active, actor=user())
    return {}


administer(
    Administered(
        name="user",
        collection="/users",
        item="/users/<uuid:user_id>",
        schema=schemas.UserSchema,
        create_input=schemas.UserCreateSchema,
        load=lambda user_id: accounts.get_user(session, user_id),
        create=_create_user,
        update=_update_user,
        update_method="PATCH",
        update_input=schemas.UserPatchSchema,
        archivable=False,
    )
)


# --- Terms ----------------------------------------------------------------------------------------


@blp.route("/terms", methods=["GET"])
@blp.arguments(schemas.ArchivedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.AdminTermListSchema)
@roles(ADMIN)
def terms(**args: Any) -> dict[str, Any]:
    """Every term, newest first, with its number of sections (`archived=true`: archived too)."""
    rows = services.list_terms(session, include_archived=args["archived"])
    return {"items": [Extended(term, section_count=count) for term, count in rows]}


administer(
    catalogue_item(
        "term",
        schemas.AdminTermSchema,
        schemas.TermInputSchema,
        services.TermDetails,
        get=services.get_term,
        create=services.create_term,
        update=services.update_term,
    )
)


@blp.route("/terms/<uuid:term_id>/sections", methods=["GET"])
@blp.arguments(schemas.ArchivedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.AdminSectionPageSchema)
@roles(ADMIN)
def term_sections(term_id: uuid.UUID, **args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The term's sections by course code; `q` matches course code or title."""
    term = services.get_term(session, term_id)
    query = services.sections_query(term, args["q"], include_archived=args["archived"])
    return page_answer(query, args)


# --- Courses --------------------------------------------------------------------------------------


@blp.route("/courses", methods=["GET"])
@blp.arguments(schemas.ArchivedQuerySchema, location="query", as_kwargs=True)
@blp.response(200, schemas.AdminCoursePageSchema)
@roles(ADMIN)
def courses(**args: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    query = services.courses_query(args["q"], include_archived=args["archived"])
    return page_answer(query, args)


administer(
    catalogue_item(
        "course",
        schemas.AdminCourseSchema,
        schemas.CourseInputSchema,
        services.CourseDetails,
        get=services.get_course,
        create=services.create_course,
        update=services.update_course,
    )
)


# --- Sections -------------------------------------------------------------------------------------


def _update_section(section: Section, data: dict[str, Any]) -> dict[str, Any]:
    """Save a section; raising the capacity moves waitlisted students in (counted in the
    answer). Term and course cannot change."""
    promoted = services.update_section(
        session, section, services.SectionDetails(**data), actor=user(), now=now()
    )
    return {"promoted_from_waitlist": promoted}


administer(
    Administered(
        name="section",
        collection="/sections",
        item="/sections/<uuid:section_id>",
        schema=schemas.AdminSectionSchema,
        create_input=schemas.SectionInputSchema,
        load=lambda section_id: catalogue.get_section(
            session, section_id, include_archived=True, full=True
        ),
        create=lambda data: services.create_section(
            session, services.SectionDetails(**data), actor=user()
        ),
        update=_update_section,
        update_answer=schemas.SectionUpdateResultSchema,
    )
)
