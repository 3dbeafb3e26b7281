"""Lab-report uploads by students; downloads (one by one or a zip) by staff."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import IO, cast

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import validate_csrf
from werkzeug.wrappers import Response
from wtforms.validators import ValidationError as CSRFError

from portal import multipart
from portal.auth.policy import STAFF, roles
from portal.catalogue.services import get_section
from portal.errors import FormTooLarge
from portal.extensions import csrf
from portal.grading.services import get_assessment
from portal.models import Submission, utcnow
from portal.submissions import services, storage
from portal.web import attachment, commit_or_show, db_session, signed_in_user

bp = Blueprint("submissions", __name__)

FILE_FIELD = "report"


def upload_dir() -> Path:
    """UPLOAD_DIR from the settings; never inside the folder the web server serves."""
    directory = Path(current_app.config["PORTAL"]["UPLOAD_DIR"]).resolve()
    static = Path(current_app.static_folder or "").resolve()
    if directory == static or static in directory.parents:
        raise RuntimeError("UPLOAD_DIR must not be inside the static folder")
    return directory


def max_upload_bytes() -> int:
    return int(current_app.config["PORTAL"]["MAX_UPLOAD_MB"]) * 1024 * 1024


def _uploaded(submission: Submission, assessment_name: str) -> tuple[str, str]:
    uploaded = _(
        "%(file)s uploaded for %(assessment)s (attempt %(attempt)s).",
        file=submission.original_name,
        assessment=assessment_name,
        attempt=submission.attempt,
    )
    if submission.late:
        uploaded += " " + _("It was handed in after the due time and is marked late.")
    return (
        uploaded,
        "warning" if submission.late else "success",
    )


@bp.get("/lab-reports")
@roles("student")
def mine() -> str:
    items = services.student_assessments(db_session(), signed_in_user())
    return render_template(
        "submissions/mine.html",
        items=items,
        max_mb=current_app.config["PORTAL"]["MAX_UPLOAD_MB"],
        accepted=storage.accepted_description(),
        accept_attr=",".join(storage.ALLOWED_EXTENSIONS),
    )


@bp.post("/assessments/<uuid:assessment_id>/submissions")
@roles("student")
@csrf.exempt  # the body is parsed here, by a streaming parser; CSRF is checked below
def upload(assessment_id: uuid.UUID) -> Response:
    """Stream the upload to a temporary file chunk by chunk, stopping at the size limit."""
    back_to = url_for("submissions.mine") + f"#assessment-{assessment_id}"
    back = redirect(back_to, code=303)
    assessment = get_assessment(db_session(), assessment_id)
    directory = upload_dir()
    limit = max_upload_bytes()
    received: list[storage.IncomingFile] = []

    def stream_factory(
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        incoming = storage.IncomingFile(directory, limit)
        received.append(incoming)
        return cast(IO[bytes], incoming)

    try:
        try:
            form, files = multipart.read_request_form(request, stream_factory)
        except FormTooLarge as error:  # the file, the text fields or the number of parts
            flash(str(error), "danger")
            return back
        except ValueError:
            abort(400)
        try:
            validate_csrf(form.get("csrf_token") or request.headers.get("X-CSRFToken"))
        except CSRFError:
            abort(400)
        upload = files.get(FILE_FIELD)
        if upload is None or not upload.filename:
            flash(_("Choose a file to upload."), "danger")
            return back
        incoming = next(item for item in received if item is upload.stream)
        filename = upload.filename
        return commit_or_show(
            lambda: services.submit(
                db_session(),
                signed_in_user(),
                assessment,
                incoming,
                filename,
                upload_dir=directory,
                now=utcnow(),
            ),
            message=lambda submission: _uploaded(submission, assessment.name),
            redirect_to=back_to,
            code=303,
        )
    finally:
        for item in received:
            item.discard()


@bp.get("/submissions/<uuid:submission_id>/download")
@roles("student", *STAFF)
def download(submission_id: uuid.UUID) -> Response:
    submission = services.get_submission(db_session(), submission_id)
    services.ensure_can_download(db_session(), signed_in_user(), submission)
    return attachment(
        services.file_path(upload_dir(), submission),
        mimetype=submission.content_type,
        name=submission.original_name,
    )


@bp.get("/sections/<uuid:section_id>/submissions")
@roles(*STAFF)
def section(section_id: uuid.UUID) -> str:
    overview = services.section_submissions(
        db_session(), signed_in_user(), get_section(db_session(), section_id)
    )
    return render_template("submissions/section.html", overview=overview)


@bp.get("/assessments/<uuid:assessment_id>/submissions.zip")
@roles(*STAFF)
def download_zip(assessment_id: uuid.UUID) -> Response:
    assessment = get_assessment(db_session(), assessment_id)
    services.ensure_can_collect(signed_in_user(), assessment)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - sent below
    services.write_zip(db_session(), upload_dir(), assessment, cast(IO[bytes], spool))
    spool.seek(0)
    name = f"{assessment.section.course.code}-{assessment.section.number}-{assessment.name}"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).strip("-")
    return attachment(
        cast(IO[bytes], spool), mimetype="application/zip", name=f"{safe or 'submissions'}.zip"
    )
