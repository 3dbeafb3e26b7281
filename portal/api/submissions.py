"""Lab-report submissions: metadata (a student's own; a section's for its staff) and files."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from werkzeug.wrappers import Response

from portal.api import API_V1, schemas
from portal.api.common import session, user
from portal.api.schemas import Extended
from portal.auth.policy import STAFF, roles
from portal.catalogue.services import get_section
from portal.submissions import services
from portal.web import attachment

blp = Blueprint(
    "api_submissions", __name__, url_prefix=API_V1, description="Lab-report submissions"
)


def _upload_dir() -> Path:
    return Path(current_app.config["PORTAL"]["UPLOAD_DIR"]).resolve()


@blp.route("/me/submissions", methods=["GET"])
@blp.response(200, schemas.MySubmissionsSchema)
@roles("student")
def mine() -> dict[str, Any]:
    """Every lab and assignment the calling student can submit to, with their attempts
    (newest first)."""
    return {"items": services.student_assessments(session, user())}


@blp.route("/sections/<uuid:section_id>/submissions", methods=["GET"])
@blp.response(200, schemas.SectionSubmissionsSchema)
@roles(*STAFF)
def section(section_id: uuid.UUID) -> Extended:
    """The newest attempt of every enrolled student for each assessment the caller collects."""
    overview = services.section_submissions(session, user(), get_section(session, section_id))
    assessments = [
        Extended(
            item,
            students=[
                {
                    "student": student,
                    "attempts": item.attempts.get(student.id, 0),
                    "latest": item.latest.get(student.id),
                }
                for student in overview.roster
            ],
        )
        for item in overview.assessments
    ]
    return Extended(overview, assessments=assessments)


@blp.route("/submissions/<uuid:submission_id>/file", methods=["GET"])
@blp.response(
    200,
    content_type="application/octet-stream",
    description="The file as an attachment, with its detected content type",
)
@blp.doc(**{"x-no-etag": True})  # a file download: no-store, no ETag
@roles("student", *STAFF)
def download(submission_id: uuid.UUID) -> Response:
    """The submitted file: students their own, staff the assessments they may grade."""
    submission = services.get_submission(session, submission_id)
    services.ensure_can_download(session, user(), submission)
    return attachment(
        services.file_path(_upload_dir(), submission),
        mimetype=submission.content_type,
        name=submission.original_name,
    )
