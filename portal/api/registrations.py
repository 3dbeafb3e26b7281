"""The calling student's registrations: list, register (or join the waitlist), drop."""

from __future__ import annotations

import uuid
from typing import Any

from flask_babel import gettext as _
from flask_smorest import Blueprint

from portal.api import API_V1, schemas
from portal.api.common import now, session, user
from portal.auth import access
from portal.auth.policy import roles
from portal.catalogue.services import get_section
from portal.errors import NotFound
from portal.models import Registration
from portal.registration import services
from portal.registration.summaries import registration_summaries
from portal.web import commit_keeping_loaded

blp = Blueprint(
    "api_registrations",
    __name__,
    url_prefix=f"{API_V1}/me/registrations",
    description="The calling student's registrations",
)


def _own_registration(registration_id: uuid.UUID) -> Registration:
    registration = session.get(Registration, registration_id)
    if registration is None or not access.owns(user(), registration):
        raise NotFound(_("You have no such registration."))
    return registration


@blp.route("", methods=["GET"])
@blp.response(200, schemas.RegistrationListSchema)
@roles("student")
def mine() -> dict[str, Any]:
    """Every registration (enrolled, waitlisted, dropped), newest term first."""
    return {"items": registration_summaries(session, user().id)}


@blp.route("", methods=["POST"])
@blp.arguments(schemas.RegistrationCreateSchema)
@blp.response(201, schemas.RegistrationSchema)
@blp.alt_response(409, response="CONFLICT")
@roles("student")
def register(data: dict[str, Any]) -> Registration:
    """Register for a section: enrolled when a seat is free, else waitlisted (status says
    which); refused with 409 by the same rules as the page (window, prerequisites, clashes,
    credit limit, full waitlist)."""
    section = get_section(session, data["section_id"])
    registration = services.register(session, user(), section, now=now())
    commit_keeping_loaded()
    return registration


@blp.route("/<uuid:registration_id>", methods=["DELETE"])
@blp.response(200, schemas.DropResultSchema)
@blp.alt_response(409, response="CONFLICT")
@roles("student")
def drop(registration_id: uuid.UUID) -> dict[str, Any]:
    """Drop an enrolment or leave a waitlist (the first waitlisted student moves up)."""
    registration = _own_registration(registration_id)
    services.drop(session, registration, now=now())
    commit_keeping_loaded()
    return {"registration": registration}
