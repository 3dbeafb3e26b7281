"""Background jobs of the admin feature, run by portal/jobs.py (an RQ worker or a thread)
inside an application context."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import cast

from flask import current_app
from flask_babel import force_locale
from sqlalchemy.orm import Session

from portal.admin import import_jobs
from portal.extensions import db
from portal.models import User, utcnow


def import_store() -> import_jobs.JobStore:
    """Imports live in the shared directory, so that every instance sees every import."""
    return import_jobs.JobStore(Path(current_app.config["PORTAL"]["SHARED_DIR"]) / "imports")


def run_import(job_id: str, mode: str, actor_id: str, language: str = "") -> None:
    """The dry run ("check") or the import of one uploaded file; its report and progress are
    said in `language`, the language of the person who started it."""
    session = cast(Session, db.session)
    actor = session.get(User, uuid.UUID(actor_id))
    with force_locale(language) if language else nullcontext():
        import_jobs.execute(import_store(), job_id, mode, session, actor=actor, now=utcnow())
