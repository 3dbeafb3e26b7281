"""Register, drop, and the student's own registrations."""

import uuid

from flask import Blueprint, abort, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.auth import access
from portal.auth.policy import is_safe_redirect, roles
from portal.catalogue.services import get_section
from portal.models import Registration, Section, utcnow
from portal.registration import services
from portal.registration.summaries import registration_summaries
from portal.web import Undo, commit_or_show, db_session, signed_in_user

bp = Blueprint("registration", __name__)


def _back(default: str) -> str:
    """Where the form asked to go back to (`next`), if it is on this site; else `default`."""
    target = request.form.get("next", "")
    return target if is_safe_redirect(target) else default


@bp.get("/registrations")
@roles("student")
def mine() -> str:
    registrations = registration_summaries(db_session(), signed_in_user().id)
    now = utcnow()
    drop_blockers = {r.id: services.drop_blocker(r, now) for r in registrations}
    return render_template(
        "registration/mine.html", registrations=registrations, drop_blockers=drop_blockers
    )


def _registered(section: Section, registration: Registration) -> tuple[str, str]:
    if registration.status == "enrolled":
        return _("You are enrolled in %(label)s.", label=section.label), "success"
    return (
        _(
            "%(label)s is full: you are on the waitlist at position %(position)s. You will be "
            "enrolled automatically when a seat frees up.",
            label=section.label,
            position=registration.waitlist_position,
        ),
        "warning",
    )


@bp.post("/sections/<uuid:section_id>/register")
@roles("student")
def register(section_id: uuid.UUID) -> Response:
    section = get_section(db_session(), section_id)
    return commit_or_show(
        lambda: services.register(db_session(), signed_in_user(), section, now=utcnow()),
        message=lambda registration: _registered(section, registration),
        redirect_to=_back(url_for("catalogue.section", section_id=section_id)),
    )


@bp.post("/registrations/<uuid:registration_id>/drop")
@roles("student")
def drop(registration_id: uuid.UUID) -> Response:
    registration = db_session().get(Registration, registration_id)
    if registration is None or not access.owns(signed_in_user(), registration):
        abort(404)
    section = registration.section
    was_waitlisted = registration.status == "waitlisted"
    back = _back(url_for("registration.mine"))
    return commit_or_show(
        lambda: services.drop(db_session(), registration, now=utcnow()),
        message=_("You left the waitlist for %(label)s.", label=section.label)
        if was_waitlisted
        else _("You dropped %(label)s.", label=section.label),
        redirect_to=back,
        undo=lambda _: _register_again(section, was_waitlisted, back),
    )


def _register_again(section: Section, was_waitlisted: bool, back: str) -> Undo | None:
    """No true undo after a drop: the seat or the place in the queue has gone to the next
    student. What is offered is an ordinary registration, under the normal rules, and the
    note says so; nothing is offered when the rules would refuse it."""
    if services.registration_blocker(db_session(), signed_in_user(), section, utcnow()):
        return None
    return Undo(
        url_for("registration.register", section_id=section.id),
        {"next": back},
        label=_("Join the waitlist again") if was_waitlisted else _("Register again"),
        note=(
            _(
                "Your old place is not kept: you join the end of the waitlist, or get a seat if "
                "one is free."
            )
            if was_waitlisted
            else _(
                "Your seat is not kept for you: you get a seat if one is free, otherwise you "
                "join the end of the waitlist."
            )
        ),
    )
