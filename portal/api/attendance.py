"""Attendance: a section's lab sessions, a session's sheet, and one student's record."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from portal.api import API_V1, schemas
from portal.api.common import session, user
from portal.attendance import services
from portal.auth.policy import STAFF, roles
from portal.catalogue.services import get_section
from portal.models import AttendanceRecord, LabSession

blp = Blueprint(
    "api_attendance", __name__, url_prefix=API_V1, description="Lab sessions and attendance"
)


@blp.route("/sections/<uuid:section_id>/lab-sessions", methods=["GET"])
@blp.response(200, schemas.LabSessionListSchema)
@roles(*STAFF)
def lab_sessions(section_id: uuid.UUID) -> dict[str, Any]:
    section = get_section(session, section_id)
    services.ensure_can_take(user(), section)
    return {"items": services.lab_sessions(session, section.id)}


@blp.route("/sections/<uuid:section_id>/lab-sessions", methods=["POST"])
@blp.arguments(schemas.LabSessionInputSchema)
@blp.response(201, schemas.LabSessionSchema)
@roles(*STAFF)
def create_lab_session(data: dict[str, Any], section_id: uuid.UUID) -> LabSession:
    section = get_section(session, section_id)
    created = services.create_lab_session(
        session, user(), section, services.LabSessionInput(**data)
    )
    session.commit()
    return created


@blp.route("/lab-sessions/<uuid:lab_session_id>/attendance", methods=["GET"])
@blp.response(200, schemas.AttendanceSheetSchema)
@roles(*STAFF)
def sheet(lab_session_id: uuid.UUID) -> dict[str, Any]:
    """The whole roster with each student's status for this session (null: not recorded)."""
    lab_session = services.get_lab_session(session, lab_session_id)
    services.ensure_can_take(user(), lab_session.section)
    lines = services.sheet(session, lab_session)
    return {"lab_session": lab_session, "counts": services.sheet_counts(lines), "lines": lines}


@blp.route("/lab-sessions/<uuid:lab_session_id>/attendance/<uuid:student_id>", methods=["PUT"])
@blp.arguments(schemas.AttendanceInputSchema)
@blp.response(200, schemas.AttendanceRecordSchema)
@roles(*STAFF)
def record(
    data: dict[str, Any], lab_session_id: uuid.UUID, student_id: uuid.UUID
) -> AttendanceRecord:
    """Record (or change) one enrolled student's attendance for the session."""
    lab_session = services.get_lab_session(session, lab_session_id)
    entry = services.record_attendance(session, user(), lab_session, student_id, data["status"])
    session.commit()
    return entry
