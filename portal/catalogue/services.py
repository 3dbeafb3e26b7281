"""The course catalogue: search and the queries behind course and section pages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload, selectinload

from portal.errors import NotFound
from portal.models import Course, Prerequisite, Registration, Section, Term


@dataclass(frozen=True)
class CatalogueFilter:
    text: str = ""
    term_code: str = ""
    department: str = ""


def terms(db: Session) -> list[Term]:
    return list(db.scalars(select(Term).where(Term.deleted_at.is_(None)).order_by(Term.starts_on)))


def current_term(db: Session, today: date) -> Term | None:
    """The term under way today; else the next one to start; else the last one that ended."""
    return term_in_force(terms(db), today)


def term_in_force(every: Sequence[Term], today: date) -> Term | None:
    """`current_term` among terms already read (any order): what Home, the catalogue and the
    dashboard open on."""
    every = sorted(every, key=lambda term: term.starts_on)
    under_way = [t for t in every if t.starts_on <= today <= t.ends_on]
    if under_way:
        return under_way[-1]
    upcoming = [t for t in every if t.starts_on > today]
    if upcoming:
        return upcoming[0]
    return every[-1] if every else None


def departments(db: Session) -> list[str]:
    return list(
        db.scalars(
            select(Course.department)
            .where(Course.deleted_at.is_(None))
            .distinct()
            .order_by(Course.department)
        )
    )


def search_courses_query(db: Session, filters: CatalogueFilter) -> Select[Course]:
    """A select of matching courses, ordered by code; paging is left to the caller."""
    query = select(Course).where(Course.deleted_at.is_(None))
    if filters.department:
        query = query.where(Course.department == filters.department)
    text = filters.text.strip().lower()
    if text:
        # contains(autoescape): "%" and "_" typed in a search match themselves
        like = text
        query = query.where(
            or_(
                func.lower(Course.code).contains(like, autoescape=True),
                func.lower(Course.title).contains(like, autoescape=True),
            )
        )
    if filters.term_code:
        # A correlated EXISTS after the cheap filters: checked only for courses that match the
        # text (an IN over every section of the term costs more with thousands of sections).
        offered = (
            select(Section.id)
            .join(Section.term)
            .where(
                Section.course_id == Course.id,
                Term.code == filters.term_code,
                Section.deleted_at.is_(None),
            )
        )
        query = query.where(offered.exists())
    return query.order_by(Course.code)


def sections_for_courses(
    db: Session, courses: list[Course], term_code: str = ""
) -> dict[uuid.UUID, list[Section]]:
    """Sections of the listed courses (one query), grouped by course id."""
    if not courses:
        return {}
    query = (
        select(Section)
        .join(Section.term)
        .where(Section.course_id.in_([c.id for c in courses]), Section.deleted_at.is_(None))
        .options(selectinload(Section.meetings), contains_eager(Section.term))
        .order_by(Term.starts_on, Section.number)
    )
    if term_code:
        query = query.where(Term.code == term_code)
    grouped: dict[uuid.UUID, list[Section]] = {}
    for section in db.scalars(query):
        grouped.setdefault(section.course_id, []).append(section)
    return grouped


def get_course(db: Session, code: str) -> Course:
    course = db.scalar(
        select(Course)
        .where(Course.code == code, Course.deleted_at.is_(None))
        .options(selectinload(Course.prerequisites).selectinload(Prerequisite.required_course))
    )
    if course is None:
        raise NotFound(_("There is no course %(code)s in the catalogue.", code=repr(code)))
    return course


def lock_section(db: Session, section_id: uuid.UUID) -> None:
    """Hold the section's row until the commit: rules that read and then write (the seat check
    before joining a waitlist, a mark against finalised grades) cannot interleave with another
    transaction doing the same. A row lock on PostgreSQL; on SQLite the write transaction begun
    with BEGIN IMMEDIATE already serialises."""
    db.execute(select(Section.id).where(Section.id == section_id).with_for_update())


def share_section(db: Session, section_id: uuid.UUID) -> None:
    """Hold the section's row against `lock_section` only, until the commit: many changes that
    each touch their own rows of the section (marks of different students) go on at once, while
    a change of the whole section (finalising, an assessment's rules) waits for them, and they
    for it. FOR KEY SHARE on PostgreSQL (it does not conflict with updating the section's
    counts); on SQLite the write transaction already serialises."""
    db.execute(
        select(Section.id)
        .where(Section.id == section_id)
        .with_for_update(read=True, key_share=True)
    )


def get_section(
    db: Session, section_id: uuid.UUID, *, include_archived: bool = False, full: bool = False
) -> Section:
    """The one loader of a section (for every feature), with its course and term.

    include_archived: an archived section is found too (the admin's pages); otherwise it is
    NotFound, like a section that does not exist.
    full: also load what a section's own page shows (prerequisites, meetings, staff).
    Raises NotFound ("That section does not exist.").
    """
    query = select(Section).where(Section.id == section_id)
    if not include_archived:
        query = query.where(Section.deleted_at.is_(None))
    if full:
        query = query.options(
            selectinload(Section.course)
            .selectinload(Course.prerequisites)
            .selectinload(Prerequisite.required_course),
            selectinload(Section.term),
            selectinload(Section.meetings),
            selectinload(Section.instructor),
            selectinload(Section.lab_staff),
        )
    else:
        # Course and term in the same statement (each section has one of each): one round
        # trip instead of three on every page and call that loads a section.
        query = query.options(
            joinedload(Section.course, innerjoin=True), joinedload(Section.term, innerjoin=True)
        )
    section = db.scalar(query)
    if section is None:
        raise NotFound(_("That section does not exist."))
    return section


def registration_of(db: Session, student_id: uuid.UUID, section: Section) -> Registration | None:
    return db.scalar(
        select(Registration).where(
            Registration.student_id == student_id, Registration.section_id == section.id
        )
    )
