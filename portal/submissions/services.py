"""Lab-report submissions: who may submit and download, resubmissions with history, late flags,
and the zip of one assessment. File bytes are handled by portal/submissions/storage.py."""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal.auth import access
from portal.errors import Forbidden, NotFound, ValidationError
from portal.grading.services import finalisation_of
from portal.models import (
    Assessment,
    Course,
    GradeFinalisation,
    Registration,
    Section,
    StoredFile,
    Submission,
    Term,
    User,
)
from portal.submissions import storage

SUBMITTABLE_KINDS = ("lab", "assignment")


# --- Who may do what ------------------------------------------------------------------------------


def staff_kinds(user: User, section: Section) -> tuple[str, ...]:
    """Kinds of assessment whose submissions `user` may see (the gradebook rule)."""
    return tuple(kind for kind in access.gradable_kinds(user, section) if kind in SUBMITTABLE_KINDS)


def ensure_can_collect(user: User, assessment: Assessment) -> None:
    if assessment.kind not in staff_kinds(user, assessment.section):
        raise Forbidden(_("You may not see the submissions for this assessment."))


def ensure_can_download(db: Session, user: User, submission: Submission) -> None:
    if user.role == "student":
        if not access.owns(user, submission):
            raise Forbidden(_("You can download only your own submissions."))
        return
    ensure_can_collect(user, submission.assessment)


# --- Loading --------------------------------------------------------------------------------------


def get_submission(db: Session, submission_id: uuid.UUID) -> Submission:
    submission = db.scalar(
        select(Submission)
        .where(Submission.id == submission_id)
        .options(
            selectinload(Submission.assessment)
            .selectinload(Assessment.section)
            .selectinload(Section.course)
        )
    )
    if submission is None:
        raise NotFound(_("There is no such submission."))
    return submission


@dataclass
class StudentAssessment:
    assessment: Assessment
    history: list[Submission] = field(default_factory=list)  # newest first
    is_final: bool = False

    @property
    def latest(self) -> Submission | None:
        return self.history[0] if self.history else None


def student_assessments(db: Session, student: User) -> list[StudentAssessment]:
    """Every assessment the student can submit to, with their own submissions (newest first)."""
    section_ids = list(
        db.scalars(
            select(Registration.section_id).where(
                Registration.student_id == student.id, Registration.status == "enrolled"
            )
        )
    )
    if not section_ids:
        return []
    assessments = list(
        db.scalars(
            select(Assessment)
            .join(Assessment.section)
            .join(Section.term)
            .join(Section.course)
            .where(
                Assessment.section_id.in_(section_ids),
                Assessment.deleted_at.is_(None),
                Assessment.kind.in_(SUBMITTABLE_KINDS),
            )
            .order_by(Term.starts_on.desc(), Course.code, Assessment.position, Assessment.name)
            .options(
                selectinload(Assessment.section).selectinload(Section.course),
                selectinload(Assessment.section).selectinload(Section.term),
            )
        )
    )
    history: dict[uuid.UUID, list[Submission]] = defaultdict(list)
    for submission in db.scalars(
        select(Submission)
        .where(
            Submission.student_id == student.id,
            Submission.assessment_id.in_([a.id for a in assessments]),
        )
        .order_by(Submission.attempt.desc())
    ):
        history[submission.assessment_id].append(submission)
    final_sections = set(
        db.scalars(
            select(GradeFinalisation.section_id).where(
                GradeFinalisation.section_id.in_(section_ids)
            )
        )
    )
    return [
        StudentAssessment(a, history[a.id], a.section_id in final_sections) for a in assessments
    ]


# --- Submitting -----------------------------------------------------------------------------------


def submit(
    db: Session,
    student: User,
    assessment: Assessment,
    incoming: storage.IncomingFile,
    original_name: str | None,
    *,
    upload_dir: Path,
    now: datetime,
    row_id: uuid.UUID | None = None,
) -> Submission:
    """Check and store an uploaded file as the student's next attempt.

    The temporary file is always consumed: stored under its hash, or removed on refusal.
    `row_id` keeps the id a device gave the submission offline."""
    try:
        _check_may_submit(db, student, assessment)
        name = storage.display_name(original_name)
        sha256 = incoming.finish()
        if incoming.size == 0:
            raise ValidationError(
                _("%(name)s is empty: choose the file with your report.", name=repr(name))
            )
        kind = storage.check_type(name, incoming.path, incoming.head)
        content_type = storage.CONTENT_TYPES[kind]

        # One student's attempts are numbered under their row lock (SQLite: the write transaction).
        db.execute(select(User.id).where(User.id == student.id).with_for_update())
        previous = db.scalar(
            select(func.max(Submission.attempt)).where(
                Submission.assessment_id == assessment.id, Submission.student_id == student.id
            )
        )
        if db.scalar(select(StoredFile.id).where(StoredFile.sha256 == sha256)) is None:
            try:
                with db.begin_nested():
                    db.add(StoredFile(sha256=sha256, size=incoming.size, content_type=content_type))
                    db.flush()
            except IntegrityError:
                pass  # the same content was stored at the same moment by someone else
        storage.store(upload_dir, incoming, sha256)
        submission = Submission(
            id=row_id or uuid.uuid4(),
            assessment_id=assessment.id,
            student_id=student.id,
            attempt=(previous or 0) + 1,
            file_sha256=sha256,
            original_name=name,
            size=incoming.size,
            content_type=content_type,
            submitted_at=now,
            late=assessment.due_at is not None and now > assessment.due_at,
        )
        db.add(submission)
        db.flush()
        return submission
    finally:
        incoming.discard()  # a no-op once the file was moved into the store


def _check_may_submit(db: Session, student: User, assessment: Assessment) -> None:
    """A student enrolled in the section hands in to an assessment that takes uploads, while
    its grades are not final."""
    if student.role != "student":
        raise Forbidden(_("Only students submit lab reports."))
    if assessment.deleted_at is not None:
        raise NotFound(_("There is no such assessment."))
    if assessment.kind not in SUBMITTABLE_KINDS:
        raise ValidationError(_("%(name)s does not take uploads.", name=assessment.name))
    enrolled = db.scalar(
        select(Registration.id).where(
            Registration.student_id == student.id,
            Registration.section_id == assessment.section_id,
            Registration.status == "enrolled",
        )
    )
    if enrolled is None:
        raise Forbidden(_("You are not enrolled in %(label)s.", label=assessment.section.label))
    if finalisation_of(db, assessment.section_id) is not None:
        raise ValidationError(
            _(
                "Grades for %(label)s are final: submissions are closed.",
                label=assessment.section.label,
            )
        )


def file_path(upload_dir: Path, submission: Submission) -> Path:
    path = storage.blob_path(upload_dir, submission.file_sha256)
    if not path.is_file():
        raise NotFound(_("The file of this submission is missing from the store."))
    return path


# --- What staff see -------------------------------------------------------------------------------


@dataclass
class AssessmentSubmissions:
    assessment: Assessment
    latest: dict[uuid.UUID, Submission]  # student id -> newest attempt
    attempts: dict[uuid.UUID, int]  # student id -> number of attempts

    @property
    def late_count(self) -> int:
        return sum(1 for s in self.latest.values() if s.late)


@dataclass
class SectionSubmissions:
    section: Section
    roster: list[User]
    assessments: list[AssessmentSubmissions]


def section_submissions(db: Session, user: User, section: Section) -> SectionSubmissions:
    """Submissions per assessment the user may collect, in a constant number of queries."""
    kinds = staff_kinds(user, section)
    if not kinds:
        raise Forbidden(_("You are not assigned to %(label)s.", label=section.label))
    assessments = list(
        db.scalars(
            select(Assessment)
            .where(
                Assessment.section_id == section.id,
                Assessment.deleted_at.is_(None),
                Assessment.kind.in_(kinds),
            )
            .order_by(Assessment.position, Assessment.name)
        )
    )
    roster = list(
        db.scalars(
            select(User)
            .join(Registration, Registration.student_id == User.id)
            .where(Registration.section_id == section.id, Registration.status == "enrolled")
            .order_by(User.full_name, User.username)
        )
    )
    latest: dict[uuid.UUID, dict[uuid.UUID, Submission]] = defaultdict(dict)
    attempts: dict[uuid.UUID, dict[uuid.UUID, int]] = defaultdict(dict)
    if assessments:
        for submission in db.scalars(
            select(Submission)
            .where(Submission.assessment_id.in_([a.id for a in assessments]))
            .order_by(Submission.attempt)
        ):
            latest[submission.assessment_id][submission.student_id] = submission
            attempts[submission.assessment_id][submission.student_id] = submission.attempt
    for assessment in assessments:
        assessment.section = section  # already loaded: spare the lazy load
    return SectionSubmissions(
        section=section,
        roster=roster,
        assessments=[AssessmentSubmissions(a, latest[a.id], attempts[a.id]) for a in assessments],
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60] or "student"


def write_zip(db: Session, upload_dir: Path, assessment: Assessment, target: IO[bytes]) -> int:
    """Write every student's latest attempt into a zip, with a manifest; returns the count.

    Names inside the zip are built from the student number and name and the detected type,
    never from the uploaded file name (which is listed in manifest.csv)."""
    rows = db.execute(
        select(Submission, User)
        .join(User, Submission.student_id == User.id)
        .where(Submission.assessment_id == assessment.id)
        .order_by(User.full_name, Submission.attempt)
    ).all()
    latest: dict[uuid.UUID, tuple[Submission, User]] = {}
    for submission, student in rows:
        latest[student.id] = (submission, student)
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(
        [
            "file",
            "student_number",
            "student",
            "attempt",
            "submitted_at",
            "late",
            "original_name",
            "sha256",
        ]
    )
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for submission, student in latest.values():
            kind = next(
                (k for k, v in storage.CONTENT_TYPES.items() if v == submission.content_type),
                "zip",
            )
            arcname = (
                f"{_slug(student.student_number or student.username)}_{_slug(student.full_name)}"
                f"_attempt-{submission.attempt}{'_late' if submission.late else ''}"
                f"{storage.CANONICAL_EXTENSIONS[kind]}"
            )
            archive.write(file_path(upload_dir, submission), arcname)
            writer.writerow(
                [
                    arcname,
                    student.student_number or "",
                    student.full_name,
                    submission.attempt,
                    submission.submitted_at.isoformat(),
                    "yes" if submission.late else "no",
                    submission.original_name,
                    submission.file_sha256,
                ]
            )
        archive.writestr("manifest.csv", manifest.getvalue())
    return len(latest)
