"""Register, drop, and the student's own registrations."""

import uuid
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.policy import is_safe_redirect, roles
from portal.catalogue.services import get_section
from portal.errors import RegistrationError
from portal.extensions import db
from portal.models import Registration
from portal.registration import services

bp = Blueprint("registration", __name__)


def _back(default: str) -> Response:
    target = request.form.get("next", "")
    return redirect(target if is_safe_redirect(target) else default)


@bp.get("/registrations")
@roles("student")
def mine() -> str:
    registrations = services.student_registrations(db.session, current_user)  # type: ignore[arg-type]
    return render_template("registration/mine.html", registrations=registrations)


@bp.post("/sections/<uuid:section_id>/register")
@roles("student")
def register(section_id: uuid.UUID) -> Response:
    section = get_section(db.session, section_id)
    try:
        registration = services.register(
            db.session,
            current_user,
            section,
            now=datetime.now(UTC),  # type: ignore[arg-type]
        )
    except RegistrationError as error:
        db.session.rollback()
        flash(str(error), "danger")
    else:
        db.session.commit()
        if registration.status == "enrolled":
            flash(f"You are enrolled in {section.label}.", "success")
        else:
            flash(
                f"{section.label} is full: you are on the waitlist at position "
                f"{registration.waitlist_position}. You will be enrolled automatically when a "
                "seat frees up.",
                "warning",
            )
    return _back(url_for("catalogue.section", section_id=section_id))


@bp.post("/registrations/<uuid:registration_id>/drop")
@roles("student")
def drop(registration_id: uuid.UUID) -> Response:
    registration = db.session.get(Registration, registration_id)
    if registration is None or registration.student_id != current_user.id:
        abort(404)
    label = registration.section.label
    was_waitlisted = registration.status == "waitlisted"
    try:
        services.drop(db.session, registration, now=datetime.now(UTC))
    except RegistrationError as error:
        db.session.rollback()
        flash(str(error), "danger")
    else:
        db.session.commit()
        flash(
            f"You left the waitlist for {label}." if was_waitlisted else f"You dropped {label}.",
            "success",
        )
    return _back(url_for("registration.mine"))
