from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from portal.accounts.services import authenticate
from portal.demo import services
from portal.errors import ValidationError
from portal.grading.scale import letter_for
from portal.grading.services import finalisation_of, gradebook, student_results
from portal.models import (
    AttendanceRecord,
    Course,
    GradeFinalisation,
    LabSession,
    Mark,
    Registration,
    Section,
    Submission,
    User,
    utcnow,
)
from portal.submissions.services import file_path


def _fingerprint(db):
    return (
        db.scalars(select(User.username).order_by(User.username)).all(),
        db.scalars(select(Course.title).order_by(Course.code)).all(),
        db.execute(select(Section.capacity, Section.enrolled_count).order_by(Section.id)).all(),
    )


def test_small_demo_has_the_documented_accounts(db):
    counts = services.generate(db, "small", seed=1)
    for username in services.DEMO_ACCOUNTS:
        assert authenticate(db, username, services.DEMO_PASSWORD, now=utcnow()) is not None
    assert counts["registrations"] == services.SIZES["small"].registrations


def test_demo_data_is_deterministic_for_a_seed(app, tmp_path):
    from tests.conftest import make_app

    other = make_app(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}")
    prints = []
    for application in (app, other):
        with application.app_context():
            from portal.extensions import db

            services.generate(db.session, "small", seed=7)
            prints.append(_fingerprint(db.session))
    assert prints[0] == prints[1]


def test_section_counters_match_registrations(db):
    services.generate(db, "small", seed=3)
    for section in db.scalars(select(Section)):
        enrolled = db.scalar(
            select(func.count())
            .select_from(Registration)
            .where(Registration.section_id == section.id, Registration.status == "enrolled")
        )
        assert enrolled == section.enrolled_count <= section.capacity


def test_demo_data_refuses_to_load_twice(db):
    services.generate(db, "small")
    with pytest.raises(ValidationError, match="already holds demo data"):
        services.generate(db, "small")


def _teaching_fingerprint(db):
    return (
        db.execute(select(Mark.points).order_by(Mark.id)).all(),
        db.execute(select(AttendanceRecord.status).order_by(AttendanceRecord.id)).all(),
        db.execute(select(Submission.late, Submission.original_name).order_by(Submission.id)).all(),
    )


def test_demo_data_shows_teaching_in_both_terms(db, tmp_path):
    today = date(2026, 3, 2)
    counts = services.generate(db, "small", seed=5, today=today, upload_dir=tmp_path / "files")
    for name in ("assessments", "marks", "lab sessions", "attendance records", "submissions"):
        assert counts[name] > 0, name
    assert 0 < counts["finalised sections"] < counts["sections"]

    # Every graded section of the previous term has final grades that its marks give.
    finalised = db.scalars(select(GradeFinalisation)).all()
    assert len(finalised) == counts["finalised sections"]
    section = finalised[0].section
    book = gradebook(db, section, ("lab", "assignment", "exam"))
    assert book.is_final and book.rows
    for row in book.rows:
        assert row.final_grade == letter_for(row.percentage)
    # One past section of the demo instructor is left open to try finalising.
    instructor = db.scalar(select(User).where(User.username == "instructor"))
    past_open = [
        s
        for s in db.scalars(select(Section).where(Section.instructor_id == instructor.id))
        if s.term.ends_on < today and finalisation_of(db, s.id) is None
    ]
    assert len(past_open) == 1

    # Lab reports: files in the store, a few late (not none, not most).
    submissions = db.scalars(select(Submission)).all()
    late = [s for s in submissions if s.late]
    assert 0 < len(late) < len(submissions) / 5
    for submission in submissions[:20]:
        assert file_path(tmp_path / "files", submission).read_bytes()
    assert all(s.late == (s.submitted_at > s.assessment.due_at) for s in submissions)

    # The demo student sees marks, grades and attendance.
    student = db.scalar(select(User).where(User.username == "student"))
    results = student_results(db, student)
    assert any(r.final_grade for r in results)
    assert any(p is not None for r in results for _, p in r.assessments)
    assert db.scalar(
        select(func.count())
        .select_from(AttendanceRecord)
        .where(AttendanceRecord.student_id == student.id)
    )

    # Attendance: taken only for sessions already held; one held session left to take.
    held = db.scalars(select(LabSession).where(LabSession.held_on < today)).all()
    untaken = [s for s in held if not s.records]
    assert len(untaken) == 1 and untaken[0].section.lab_staff.username == "labstaff"
    assert not db.scalar(
        select(func.count())
        .select_from(AttendanceRecord)
        .join(LabSession)
        .where(LabSession.held_on >= today)
    )


def test_teaching_demo_data_is_deterministic_for_a_seed(app, tmp_path):
    from tests.conftest import make_app

    other = make_app(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}")
    prints = []
    for number, application in enumerate((app, other)):
        with application.app_context():
            from portal.extensions import db

            services.generate(
                db.session,
                "small",
                seed=9,
                today=date(2026, 3, 2),
                upload_dir=tmp_path / str(number),
            )
            prints.append(_teaching_fingerprint(db.session))
    assert prints[0] == prints[1]
    assert all(prints[0])
