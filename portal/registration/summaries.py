"""A student's registrations as the My registrations page and the API list them, as plain
read-only values.

A fifth of the central server's requests are this page. Its registrations, sections, courses,
terms and meetings were ORM objects, built with the session's bookkeeping for each; here two Core
selects give the same values, with the attributes the template, the API schema and
`drop_blocker` read (`r.section.course.code`, `r.section.term.add_drop_deadline`, ...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.catalogue.summaries import MeetingSummary, meeting_summaries
from portal.models import Course, Registration, Section, Term, section_label


@dataclass(frozen=True, slots=True)
class CourseLine:
    code: str
    title: str
    credits: int


@dataclass(frozen=True, slots=True)
class TermLine:
    code: str
    name: str
    add_drop_deadline: datetime


@dataclass(frozen=True, slots=True)
class SectionLine:
    id: uuid.UUID
    number: str
    course: CourseLine
    term: TermLine
    meetings: list[MeetingSummary]

    @property
    def label(self) -> str:
        return section_label(self.course.code, self.number)


@dataclass(frozen=True, slots=True)
class RegistrationSummary:
    id: uuid.UUID
    section_id: uuid.UUID
    status: str
    waitlist_position: int | None
    registered_at: datetime
    enrolled_at: datetime | None
    dropped_at: datetime | None
    final_grade: str | None
    section: SectionLine


def registration_summaries(db: Session, student_id: uuid.UUID) -> list[RegistrationSummary]:
    """Every registration of the student (enrolled, waitlisted, dropped), newest term first,
    then by when it was made; each section's meetings by weekday and start (as
    Section.meetings)."""
    rows = db.execute(
        select(
            Registration.id,
            Registration.section_id,
            Registration.status,
            Registration.waitlist_position,
            Registration.registered_at,
            Registration.enrolled_at,
            Registration.dropped_at,
            Registration.final_grade,
            Section.number,
            Course.code,
            Course.title,
            Course.credits,
            Term.code,
            Term.name,
            Term.add_drop_deadline,
        )
        .join(Registration.section)
        .join(Section.term)
        .join(Section.course)
        .where(Registration.student_id == student_id)
        .order_by(Term.starts_on.desc(), Registration.registered_at)
    ).all()
    if not rows:
        return []
    meetings = meeting_summaries(db, [row[1] for row in rows])
    return [
        RegistrationSummary(
            id=row[0],
            section_id=row[1],
            status=row[2],
            waitlist_position=row[3],
            registered_at=row[4],
            enrolled_at=row[5],
            dropped_at=row[6],
            final_grade=row[7],
            section=SectionLine(
                id=row[1],
                number=row[8],
                course=CourseLine(code=row[9], title=row[10], credits=row[11]),
                term=TermLine(code=row[12], name=row[13], add_drop_deadline=row[14]),
                meetings=meetings[row[1]],
            ),
        )
        for row in rows
    ]
