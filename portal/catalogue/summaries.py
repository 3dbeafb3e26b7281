"""The sections a catalogue search lists (the page and the API), as plain read-only values.

A quarter of the requests are searches. Their sections, terms and meetings were ORM objects
(Section, Term, Meeting and the session's bookkeeping for each), which cost most of the search's
database work in the app; here two Core selects give the same values. Seat counts are read fresh
with every search, as before. The values have the attributes the templates and the API use
(`term.name`, `meetings`, `label`, `seats_left`, ...), so both read them as they read a Section.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Course, Meeting, Section, Term, meeting_label, section_label


@dataclass(frozen=True, slots=True)
class TermSummary:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class MeetingSummary:
    weekday: int
    starts_at: time
    ends_at: time
    kind: str
    deleted_at: datetime | None

    @property
    def label(self) -> str:
        return meeting_label(self.weekday, self.starts_at, self.ends_at)


@dataclass(frozen=True, slots=True)
class SectionSummary:
    id: uuid.UUID
    course_id: uuid.UUID
    course_code: str
    number: str
    room: str
    capacity: int
    enrolled_count: int
    waitlist_capacity: int
    waitlist_count: int
    term: TermSummary
    meetings: list[MeetingSummary]

    @property
    def label(self) -> str:
        return section_label(self.course_code, self.number)

    @property
    def seats_left(self) -> int:
        return max(self.capacity - self.enrolled_count, 0)


def meeting_summaries(
    db: Session, section_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MeetingSummary]]:
    """The meetings of these sections by section (the removed ones too, with when), each
    section's in the week's order; a section without meetings has an empty list."""
    meetings: dict[uuid.UUID, list[MeetingSummary]] = {section_id: [] for section_id in section_ids}
    found = db.execute(
        select(
            Meeting.section_id,
            Meeting.weekday,
            Meeting.starts_at,
            Meeting.ends_at,
            Meeting.kind,
            Meeting.deleted_at,
        )
        .where(Meeting.section_id.in_(list(meetings)))
        .order_by(Meeting.weekday, Meeting.starts_at)
    )
    for section_id, weekday, starts_at, ends_at, kind, deleted_at in found:
        meetings[section_id].append(MeetingSummary(weekday, starts_at, ends_at, kind, deleted_at))
    return meetings


def section_summaries(
    db: Session, courses: Sequence[Course], term_code: str = ""
) -> dict[uuid.UUID, list[SectionSummary]]:
    """The live sections of `courses` (of the term `term_code`, else of every term), grouped by
    course id, in the order of `portal.catalogue.services.sections_for_courses`: by term start,
    then number; each with its meetings by weekday and start (as Section.meetings)."""
    if not courses:
        return {}
    codes = {course.id: course.code for course in courses}
    query = (
        select(
            Section.id,
            Section.course_id,
            Section.number,
            Section.room,
            Section.capacity,
            Section.enrolled_count,
            Section.waitlist_capacity,
            Section.waitlist_count,
            Term.code,
            Term.name,
        )
        .join(Section.term)
        .where(Section.course_id.in_(list(codes)), Section.deleted_at.is_(None))
        .order_by(Term.starts_on, Section.number)
    )
    if term_code:
        query = query.where(Term.code == term_code)
    rows = db.execute(query).all()
    if not rows:
        return {}
    meetings = meeting_summaries(db, [row[0] for row in rows])
    grouped: dict[uuid.UUID, list[SectionSummary]] = {}
    for row in rows:
        section_id, course_id, number, room, capacity, enrolled, wl_capacity, waitlisted = row[:8]
        grouped.setdefault(course_id, []).append(
            SectionSummary(
                id=section_id,
                course_id=course_id,
                course_code=codes[course_id],
                number=number,
                room=room,
                capacity=capacity,
                enrolled_count=enrolled,
                waitlist_capacity=wl_capacity,
                waitlist_count=waitlisted,
                term=TermSummary(code=row[8], name=row[9]),
                meetings=meetings[section_id],
            )
        )
    return grouped
