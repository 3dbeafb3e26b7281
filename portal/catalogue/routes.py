"""Course catalogue pages."""

import uuid

from flask import Blueprint, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.policy import signed_in
from portal.catalogue import fragments, services
from portal.catalogue.summaries import section_summaries
from portal.database import paginate_one_statement
from portal.models import utcnow
from portal.registration.services import drop_blocker, registration_blocker
from portal.web import db_session, signed_in_user

ALL_TERMS = "all"
SEARCH_LIMIT = 100  # characters of a catalogue search

bp = Blueprint("catalogue", __name__)


@bp.get("/courses")
@signed_in
def index() -> str:
    term_code = request.args.get("term")
    searching = request.args.get("q") or request.args.get("department")
    if term_code is None and not searching:  # the first look: the current term's offer
        current = services.current_term(db_session(), utcnow().date())
        term_code = current.code if current else ""
    filters = services.CatalogueFilter(
        text=request.args.get("q", ""),
        term_code="" if term_code in (None, ALL_TERMS) else term_code[:20],
        department=request.args.get("department", "")[:100],
    )
    if len(filters.text) > SEARCH_LIMIT:  # refused whole, not cut to a search never typed
        search_error = _(
            "Searches are at most %(limit)s characters; yours has %(length)s. Shorten it and "
            "search again.",
            limit=SEARCH_LIMIT,
            length=format(len(filters.text), ","),
        )
        return render_template(
            "catalogue/index.html",
            page=None,
            sections={},
            filters=filters,
            search_error=search_error,
            terms=services.terms(db_session()),
            departments=services.departments(db_session()),
        )
    page = paginate_one_statement(
        services.search_courses_query(db_session(), filters),
        per_page=current_app.config["PAGE_SIZE"],
    )
    sections = section_summaries(db_session(), list(page.items), filters.term_code)
    return render_template(
        "catalogue/index.html",
        page=page,
        sections=sections,
        course_entries=fragments.course_entries,
        filters=filters,
        terms=services.terms(db_session()),
        departments=services.departments(db_session()),
    )


@bp.get("/courses/<code>")
@signed_in
def course(code: str) -> str:
    found = services.get_course(db_session(), code)
    sections = services.sections_for_courses(db_session(), [found]).get(found.id, [])
    return render_template("catalogue/course.html", course=found, sections=sections)


@bp.get("/sections/<uuid:section_id>")
@signed_in
def section(section_id: uuid.UUID) -> str:
    found = services.get_section(db_session(), section_id, full=True)
    registration = blocker = cannot_drop = None
    if current_user.role == "student":
        registration = services.registration_of(db_session(), current_user.id, found)
        if registration is None or registration.status == "dropped":
            blocker = registration_blocker(db_session(), signed_in_user(), found, utcnow())
        else:
            cannot_drop = drop_blocker(registration, utcnow())
    return render_template(
        "catalogue/section.html",
        section=found,
        registration=registration,
        blocker=blocker,
        cannot_drop=cannot_drop,
    )
