"""Teaching pages: the gradebook of a 300-student section, a student's grades and transcript.

The demo data holds no assessments, so the first look-up of the gradebook path arranges a
benchmark section (course BEN300, taught by the demo instructor) with four assessments and up
to 300 enrolled students with marks, and commits it; later look-ups find it again. PAGES is
also used by tests/benchmarks/test_query_counts.py (same query count with more data).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tests.benchmarks.harness import Page

TITLE = "Teaching pages"
SECTION_SIZE = 300
BENCH_COURSE = "BEN300"


def gradebook_path(db: Session) -> str:
    """The benchmark section's gradebook, arranged on first use."""
    from portal.models import Assessment, Course, Mark, Registration, Section, Term, User

    section_id = db.scalar(
        select(Section.id).join(Section.course).where(Course.code == BENCH_COURSE)
    )
    if section_id is None:
        instructor = db.scalar(select(User).where(User.username == "instructor"))
        term = db.scalar(select(Term).order_by(Term.starts_on.desc()).limit(1))
        assert instructor is not None and term is not None, "the demo data is missing"
        course = Course(
            code=BENCH_COURSE, title="Benchmark Laboratory", credits=4, department="Physics"
        )
        db.add(course)
        section = Section(
            course=course, term=term, number="001", capacity=SECTION_SIZE,
            waitlist_capacity=0, instructor_id=instructor.id,
        )  # fmt: skip
        db.add(section)
        db.flush()
        assessments = [
            Assessment(
                section_id=section.id,
                name=name,
                kind=kind,
                weight=weight,
                max_points=20,
                position=n,
            )  # fmt: skip
            for n, (name, kind, weight) in enumerate(
                [
                    ("Lab 1", "lab", 20),
                    ("Lab 2", "lab", 20),
                    ("Essay", "assignment", 20),
                    ("Final exam", "exam", 40),
                ]  # fmt: skip
            )
        ]
        db.add_all(assessments)
        db.flush()
        students = list(
            db.scalars(
                select(User.id)
                .where(User.role == "student", User.username != "student")
                .order_by(User.username)
                .limit(SECTION_SIZE)
            )
        )
        now = datetime.now(UTC)
        db.execute(
            insert(Registration),
            [
                {
                    "id": uuid.uuid4(),
                    "student_id": sid,
                    "section_id": section.id,
                    "status": "enrolled",
                    "registered_at": now,
                    "enrolled_at": now,
                    "created_at": now,
                    "updated_at": now,
                }  # fmt: skip
                for sid in students
            ],
        )
        db.execute(
            insert(Mark),
            [
                {
                    "id": uuid.uuid4(),
                    "assessment_id": a.id,
                    "student_id": sid,
                    "points": float((n * 7 + i * 3) % 21),
                    "created_at": now,
                    "updated_at": now,
                }  # fmt: skip
                for n, sid in enumerate(students)
                for i, a in enumerate(assessments[: 1 + n % 4])
            ],
        )
        section.enrolled_count = len(students)
        db.commit()
        section_id = section.id
    return f"/sections/{section_id}/gradebook"


PAGES = [
    Page("Gradebook, 300-student section", "instructor", gradebook_path),
    Page("My grades", "student", lambda db: "/grades"),
    Page("Transcript", "student", lambda db: "/transcript"),
]


def run(context: Any) -> list[dict[str, Any]]:
    return context.measure_pages(PAGES)
