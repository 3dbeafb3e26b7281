"""Terms, courses, sections, meetings and staff assignments: the admin's catalogue rules.

Every change is checked here (not in the forms), archived with deleted_at instead of deleted, and
written to the audit trail in the same transaction. The web forms and the CSV importer both call
these functions.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar, cast

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_babel.speaklater import LazyString
from sqlalchemy import CursorResult, Select, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from portal.audit.services import (
    add_and_record,
    apply_and_record,
    record_changes,
    snapshot,
    tombstone_and_record,
)
from portal.errors import FieldErrors, NotFound, ValidationError
from portal.models import Course, Meeting, Section, Term, User
from portal.registration.services import promote_from_waitlist

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,19}$")
SECTION_NUMBER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,9}$")
MEETING_KIND_LABELS = {
    "lecture": _l("Lecture"),
    "lab": _l("Lab"),
    "tutorial": _l("Tutorial"),
    "seminar": _l("Seminar"),
}
MEETING_KINDS = tuple(MEETING_KIND_LABELS)
MAX_CREDITS_PER_COURSE = 30
MAX_CAPACITY = 10_000
NOT_FOUND = {
    "Term": _l("No such term."),
    "Course": _l("No such course."),
    "Meeting": _l("No such meeting."),
}

# What archiving or restoring says, by kind (set_archived): whole sentences, for translators.
ARCHIVING_SAYS: dict[str, dict[str, LazyString]] = {
    "term": {
        "archived": _l("The term %(label)s was archived."),
        "restored": _l("The term %(label)s was restored."),
        "is archived": _l("The term %(label)s is already archived."),
        "is active": _l("The term %(label)s is already active."),
        "undo archived": _l("Nothing to undo: the term %(label)s is already archived."),
        "undo active": _l("Nothing to undo: the term %(label)s is already active."),
    },
    "course": {
        "archived": _l("The course %(label)s was archived."),
        "restored": _l("The course %(label)s was restored."),
        "is archived": _l("The course %(label)s is already archived."),
        "is active": _l("The course %(label)s is already active."),
        "undo archived": _l("Nothing to undo: the course %(label)s is already archived."),
        "undo active": _l("Nothing to undo: the course %(label)s is already active."),
    },
    "section": {
        "archived": _l("The section %(label)s was archived."),
        "restored": _l("The section %(label)s was restored."),
        "is archived": _l("The section %(label)s is already archived."),
        "is active": _l("The section %(label)s is already active."),
        "undo archived": _l("Nothing to undo: the section %(label)s is already archived."),
        "undo active": _l("Nothing to undo: the section %(label)s is already active."),
    },
    "meeting": {
        "archived": _l("The meeting %(label)s was archived."),
        "restored": _l("The meeting %(label)s was restored."),
        "is archived": _l("The meeting %(label)s is already archived."),
        "is active": _l("The meeting %(label)s is already active."),
        "undo archived": _l("Nothing to undo: the meeting %(label)s is already archived."),
        "undo active": _l("Nothing to undo: the meeting %(label)s is already active."),
    },
}


def _raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise FieldErrors(errors)


Item = TypeVar("Item", Term, Course, Meeting)
Coded = TypeVar("Coded", Term, Course)


def _get(db: Session, model: type[Item], item_id: uuid.UUID) -> Item:
    """The row (archived ones too); raises NotFound."""
    item = db.get(model, item_id)
    if item is None:
        raise NotFound(str(NOT_FOUND.get(model.__name__, NOT_FOUND["Term"])))
    return item


def _create(
    db: Session, item: Coded, values: dict[str, Any], *, actor: User | None, name: str
) -> Coded:
    """Add a new term or course (`name`: its name or title) and audit its creation."""
    kind = type(item).__name__.lower()
    return add_and_record(
        db,
        item,
        actor=actor,
        entity_type=kind,
        summary=lambda new: f"Created {kind} {new.code} ({name})",
        after=values,
    )


def _edit(
    db: Session, item: Coded, values: dict[str, Any], fields: tuple[str, ...], *, actor: User | None
) -> Coded:
    """Save an edit of a term or a course; the audit entry names only the fields that changed."""
    kind = type(item).__name__.lower()
    apply_and_record(
        db,
        item,
        values,
        fields,
        actor=actor,
        entity_type=kind,
        summary=lambda new: f"Edited {kind} {item.code}: {', '.join(new)}",
    )
    return item


def _matching(query: Select[Any], text: str, *columns: Any) -> Select[Any]:
    """The rows where one of `columns` contains the text searched, in any case."""
    if not text.strip():
        return query
    # contains(autoescape): "%" and "_" typed in a search match themselves
    like = text.strip().lower()
    return query.where(
        or_(*(func.lower(column).contains(like, autoescape=True) for column in columns))
    )


def _utc(moment: datetime) -> datetime:
    """Form inputs are naive and meant as UTC; aware values are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- Terms ---------------------------------------------------------------------------------------

TERM_FIELDS = (
    "code",
    "name",
    "starts_on",
    "ends_on",
    "registration_opens_at",
    "registration_closes_at",
    "add_drop_deadline",
    "max_credits",
)


@dataclass
class TermDetails:
    """A term as entered. A date or time left empty (or unreadable on a form) is None: it is
    refused with the other problems, so every problem of a form is reported at once."""

    code: str
    name: str
    starts_on: date | None
    ends_on: date | None
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    add_drop_deadline: datetime | None
    max_credits: int | None = 18


# What a term's form says when one of its values is missing (whole sentences, for translators).
TERM_REQUIRED = {
    "starts_on": _l("The first day is required."),
    "ends_on": _l("The last day is required."),
    "registration_opens_at": _l("The moment registration opens is required."),
    "registration_closes_at": _l("The moment registration closes is required."),
    "add_drop_deadline": _l("The add/drop deadline is required."),
    "max_credits": _l("The credit limit is required."),
}


def _clean_term(db: Session, details: TermDetails, existing: Term | None) -> dict[str, Any]:
    errors: dict[str, str] = {
        field: str(required)
        for field, required in TERM_REQUIRED.items()
        if getattr(details, field) is None
    }
    code = details.code.strip().upper()
    if not CODE_PATTERN.match(code):
        errors["code"] = _("Term codes are 1–20 capital letters, digits or '-', e.g. 2026-FA.")
    else:
        clash = db.scalar(select(Term).where(Term.code == code))
        if clash is not None and clash is not existing:
            errors["code"] = (
                _(
                    "The term code %(code)s is already used by %(name)s (archived: restore it "
                    "instead of creating a new one).",
                    code=code,
                    name=clash.name,
                )
                if clash.deleted_at
                else _(
                    "The term code %(code)s is already used by %(name)s.",
                    code=code,
                    name=clash.name,
                )
            )
    name = details.name.strip()
    if not name:
        errors["name"] = _("A name is required.")
    elif len(name) > 100:
        errors["name"] = _("Names are at most 100 characters.")
    opens = _utc(details.registration_opens_at) if details.registration_opens_at else None
    closes = _utc(details.registration_closes_at) if details.registration_closes_at else None
    deadline = _utc(details.add_drop_deadline) if details.add_drop_deadline else None
    if details.starts_on and details.ends_on and details.ends_on < details.starts_on:
        errors["ends_on"] = _("The term cannot end before it starts.")
    if opens and closes and closes < opens:
        errors["registration_closes_at"] = _("Registration cannot close before it opens.")
    if opens and deadline and deadline < opens:
        errors["add_drop_deadline"] = _(
            "The add/drop deadline cannot be before registration opens."
        )
    if details.max_credits is not None and not 0 < details.max_credits <= 60:
        errors["max_credits"] = _("The credit limit must be between 1 and 60.")
    _raise_if(errors)
    return {
        "code": code,
        "name": name,
        "starts_on": details.starts_on,
        "ends_on": details.ends_on,
        "registration_opens_at": opens,
        "registration_closes_at": closes,
        "add_drop_deadline": deadline,
        "max_credits": details.max_credits,
    }


def create_term(db: Session, details: TermDetails, *, actor: User | None) -> Term:
    values = _clean_term(db, details, None)
    return _create(db, Term(**values), values, actor=actor, name=values["name"])


def update_term(db: Session, term: Term, details: TermDetails, *, actor: User | None) -> Term:
    return _edit(db, term, _clean_term(db, details, term), TERM_FIELDS, actor=actor)


def get_term(db: Session, term_id: uuid.UUID) -> Term:
    return _get(db, Term, term_id)


def list_terms(db: Session, *, include_archived: bool = False) -> list[tuple[Term, int]]:
    """Terms, newest first, each with its number of (not archived) sections: one query."""
    counts = (
        select(Section.term_id, func.count().label("sections"))
        .where(Section.deleted_at.is_(None))
        .group_by(Section.term_id)
        .subquery()
    )
    query = (
        select(Term, func.coalesce(counts.c.sections, 0))
        .outerjoin(counts, counts.c.term_id == Term.id)
        .order_by(Term.starts_on.desc(), Term.code)
    )
    if not include_archived:
        query = query.where(Term.deleted_at.is_(None))
    return [(term, count) for term, count in db.execute(query)]


def term_choices(db: Session) -> list[Term]:
    return list(
        db.scalars(select(Term).where(Term.deleted_at.is_(None)).order_by(Term.starts_on.desc()))
    )


# --- Courses -------------------------------------------------------------------------------------

COURSE_FIELDS = ("code", "title", "credits", "department", "description")


@dataclass
class CourseDetails:
    code: str
    title: str
    credits: int
    department: str
    description: str = ""


def course_fields(details: CourseDetails) -> tuple[dict[str, Any], dict[str, str]]:
    """The cleaned values and the problems of each field, without asking the database."""
    errors: dict[str, str] = {}
    code = details.code.strip().upper()
    if not CODE_PATTERN.match(code):
        errors["code"] = _("Course codes are 1–20 capital letters, digits or '-', e.g. CS101.")
    title = details.title.strip()
    if not title:
        errors["title"] = _("A title is required.")
    elif len(title) > 200:
        errors["title"] = _("Titles are at most 200 characters.")
    department = details.department.strip()
    if not department:
        errors["department"] = _("A department is required.")
    elif len(department) > 100:
        errors["department"] = _("Department names are at most 100 characters.")
    if not 0 <= details.credits <= MAX_CREDITS_PER_COURSE:
        errors["credits"] = _(
            "Credits must be between 0 and %(max_credits_per_course)s.",
            max_credits_per_course=MAX_CREDITS_PER_COURSE,
        )
    values = {
        "code": code,
        "title": title,
        "credits": details.credits,
        "department": department,
        "description": details.description.strip(),
    }
    return values, errors


def course_code_taken(clash: Course) -> str:
    if clash.deleted_at:
        return _(
            "The course code %(code)s is already used by %(title)s (archived: restore it instead "
            "of creating a new one).",
            code=clash.code,
            title=clash.title,
        )
    return _(
        "The course code %(code)s is already used by %(title)s.",
        code=clash.code,
        title=clash.title,
    )


def _clean_course(db: Session, details: CourseDetails, existing: Course | None) -> dict[str, Any]:
    values, errors = course_fields(details)
    if "code" not in errors:
        clash = db.scalar(select(Course).where(Course.code == values["code"]))
        if clash is not None and clash is not existing:
            errors["code"] = course_code_taken(clash)
    _raise_if(errors)
    return values


def create_course(db: Session, details: CourseDetails, *, actor: User | None) -> Course:
    values = _clean_course(db, details, None)
    return _create(db, Course(**values), values, actor=actor, name=values["title"])


def update_course(
    db: Session, course: Course, details: CourseDetails, *, actor: User | None
) -> Course:
    return _edit(db, course, _clean_course(db, details, course), COURSE_FIELDS, actor=actor)


def get_course(db: Session, course_id: uuid.UUID) -> Course:
    return _get(db, Course, course_id)


def courses_query(text: str = "", *, include_archived: bool = False) -> Select[Any]:
    query = select(Course)
    if not include_archived:
        query = query.where(Course.deleted_at.is_(None))
    query = _matching(query, text, Course.code, Course.title, Course.department)
    return query.order_by(Course.code)


# --- Sections and staff assignments ---------------------------------------------------------------

SECTION_FIELDS = (
    "number",
    "capacity",
    "waitlist_capacity",
    "room",
    "instructor_id",
    "lab_staff_id",
)


@dataclass
class SectionDetails:
    """Plain values as a form or a CSV row gives them: codes and usernames, not ids."""

    term_code: str
    course_code: str
    number: str
    capacity: int
    waitlist_capacity: int = 0
    room: str = ""
    instructor_username: str = ""
    lab_staff_username: str = ""


def staff_problem(user: User | None, username: str, role: str) -> str | None:
    """Why `user` (found by `username`) cannot be assigned as `role`, or None."""
    if user is None or user.deleted_at is not None:
        return _("There is no user %(username)s.", username=repr(username))
    if user.role != role and role == "instructor":
        return _(
            "%(username)s is %(role)s, not an instructor.",
            username=username,
            role=str(user.role_label).lower(),
        )
    if user.role != role:
        return _(
            "%(username)s is %(role)s, not lab staff.",
            username=username,
            role=str(user.role_label).lower(),
        )
    if not user.active:
        return _("%(username)s's account is deactivated.", username=username)
    return None


def _staff_member(db: Session, username: str, role: str, errors: dict[str, str], key: str) -> Any:
    username = username.strip().lower()
    if not username:
        return None
    user = db.scalar(select(User).where(User.username == username))
    problem = staff_problem(user, username, role)
    if problem:
        errors[key] = problem
    return user


def section_fields(details: SectionDetails) -> dict[str, str]:
    """Problems of the fields that need no database: number, capacity, waitlist, room."""
    errors: dict[str, str] = {}
    if not SECTION_NUMBER_PATTERN.match(details.number.strip()):
        errors["number"] = _("Section numbers are 1–10 letters, digits or '-', e.g. 001.")
    if not 0 <= details.capacity <= MAX_CAPACITY:
        errors["capacity"] = _(
            "Capacity must be between 0 and %(max_capacity)s.",
            max_capacity=format(MAX_CAPACITY, ","),
        )
    if not 0 <= details.waitlist_capacity <= MAX_CAPACITY:
        errors["waitlist_capacity"] = _(
            "Waitlist places must be between 0 and %(max_capacity)s.",
            max_capacity=format(MAX_CAPACITY, ","),
        )
    if len(details.room.strip()) > 50:
        errors["room"] = _("Rooms are at most 50 characters.")
    return errors


def section_number_taken(course: Course, term: Term, number: str, archived: bool) -> str:
    if archived:
        return _(
            "%(course)s already has a section %(number)s in %(term)s (archived: restore it "
            "instead).",
            course=course.code,
            number=number,
            term=term.name,
        )
    return _(
        "%(course)s already has a section %(number)s in %(term)s.",
        course=course.code,
        number=number,
        term=term.name,
    )


def _active_by_code(
    db: Session, model: type[Coded], code: str, errors: dict[str, str], *, unnamed: str
) -> Coded | None:
    """The term or course of a new section, by its code; a problem under `<kind>_code` when
    there is none (`unnamed`: no code given) or it is archived."""
    kind = model.__name__.lower()
    code = code.strip().upper()
    found = db.scalar(select(model).where(model.code == code))
    term = kind == "term"
    if found is None and not code:
        errors[f"{kind}_code"] = unnamed
    elif found is None:
        errors[f"{kind}_code"] = (
            _("There is no term %(code)s.", code=repr(code))
            if term
            else _("There is no course %(code)s.", code=repr(code))
        )
    elif found.deleted_at is not None:
        errors[f"{kind}_code"] = (
            _("The term %(code)s is archived.", code=found.code)
            if term
            else _("The course %(code)s is archived.", code=found.code)
        )
    return found


def _clean_section(
    db: Session, details: SectionDetails, existing: Section | None
) -> tuple[dict[str, Any], Term | None, Course | None]:
    errors: dict[str, str] = {}
    term = course = None
    if existing is not None:
        term, course = existing.term, existing.course
        if details.term_code.strip().upper() not in ("", term.code):
            errors["term_code"] = _("A section cannot move to another term; create a new one.")
        if details.course_code.strip().upper() not in ("", course.code):
            errors["course_code"] = _("A section cannot move to another course; create a new one.")
    else:
        term = _active_by_code(db, Term, details.term_code, errors, unnamed=_("Choose a term."))
        course = _active_by_code(
            db, Course, details.course_code, errors, unnamed=_("A course is required.")
        )
    errors.update(section_fields(details))
    number = details.number.strip()
    if "number" not in errors and term is not None and course is not None:
        clash = db.scalar(
            select(Section).where(
                Section.course_id == course.id,
                Section.term_id == term.id,
                Section.number == number,
            )
        )
        if clash is not None and clash is not existing:
            errors["number"] = section_number_taken(course, term, number, clash.is_deleted)
    instructor = _staff_member(
        db, details.instructor_username, "instructor", errors, "instructor_username"
    )
    lab_staff = _staff_member(
        db, details.lab_staff_username, "lab_staff", errors, "lab_staff_username"
    )
    _raise_if(errors)
    values = {
        "number": number,
        "capacity": details.capacity,
        "waitlist_capacity": details.waitlist_capacity,
        "room": details.room.strip(),
        "instructor_id": instructor.id if instructor else None,
        "lab_staff_id": lab_staff.id if lab_staff else None,
    }
    return values, term, course


def create_section(db: Session, details: SectionDetails, *, actor: User | None) -> Section:
    values, term, course = _clean_section(db, details, None)
    assert term is not None and course is not None
    return add_and_record(
        db,
        Section(term_id=term.id, course_id=course.id, **values),
        actor=actor,
        entity_type="section",
        summary=lambda section: f"Created section {course.code}-{section.number} in {term.code}",
        after={"term": term.code, "course": course.code, **values},
    )


def update_section(
    db: Session, section: Section, details: SectionDetails, *, actor: User | None, now: datetime
) -> int:
    """Save the section; returns how many waitlisted students moved into new seats.

    Capacity is changed with one conditional UPDATE so that it can never drop below the seats a
    concurrent registration has just taken (the same rule as the registration's own UPDATE).
    """
    values, _term, _course = _clean_section(db, details, section)
    before = snapshot(section, SECTION_FIELDS)
    result = cast(  # an UPDATE's result: it has a rowcount
        "CursorResult[Any]",
        db.execute(
            update(Section)
            .where(
                Section.id == section.id,
                Section.enrolled_count <= values["capacity"],
                Section.waitlist_count <= values["waitlist_capacity"],
            )
            .values(capacity=values["capacity"], waitlist_capacity=values["waitlist_capacity"])
            .execution_options(synchronize_session=False)
        ),
    )
    db.refresh(section)
    if result.rowcount != 1:
        errors = {}
        if section.enrolled_count > values["capacity"]:
            errors["capacity"] = _(
                "%(enrolled_count)s students are enrolled; capacity cannot be lower.",
                enrolled_count=section.enrolled_count,
            )
        if section.waitlist_count > values["waitlist_capacity"]:
            errors["waitlist_capacity"] = _(
                "%(waitlist_count)s students are waitlisted; the waitlist cannot be shorter.",
                waitlist_count=section.waitlist_count,
            )
        raise FieldErrors(errors or {"capacity": _("The section changed; try again.")})
    section.number = values["number"]
    section.room = values["room"]
    section.instructor_id = values["instructor_id"]
    section.lab_staff_id = values["lab_staff_id"]
    db.flush()
    promoted = 0
    while promote_from_waitlist(db, section, now=now, actor=actor) is not None:
        promoted += 1
    db.refresh(section)
    changed = {k for k in SECTION_FIELDS if before[k] != getattr(section, k)}
    record_changes(
        db,
        section,
        before,
        actor=actor,
        entity_type="section",
        action="section.staff" if changed <= {"instructor_id", "lab_staff_id"} else "",
        summary=lambda new: (
            f"Edited section {section.label} in {section.term.code}: "
            f"{', '.join(new)}" + (f"; {promoted} promoted from the waitlist" if promoted else "")
        ),
    )
    return promoted


def section_meetings(db: Session, section: Section, *, include_archived: bool) -> list[Meeting]:
    query = select(Meeting).where(Meeting.section_id == section.id)
    if not include_archived:
        query = query.where(Meeting.deleted_at.is_(None))
    return list(db.scalars(query.order_by(Meeting.weekday, Meeting.starts_at)))


def sections_query(term: Term, text: str = "", *, include_archived: bool = False) -> Select[Any]:
    query = (
        select(Section)
        .join(Section.course)
        .where(Section.term_id == term.id)
        .options(
            selectinload(Section.course),
            selectinload(Section.instructor),
            selectinload(Section.lab_staff),
        )
    )
    if not include_archived:
        query = query.where(Section.deleted_at.is_(None))
    query = _matching(query, text, Course.code, Course.title)
    return query.order_by(Course.code, Section.number)


def staff_choices(db: Session, role: str) -> list[User]:
    return list(
        db.scalars(
            select(User)
            .where(User.role == role, User.active.is_(True), User.deleted_at.is_(None))
            .order_by(User.full_name)
        )
    )


# --- Meetings ------------------------------------------------------------------------------------

MEETING_FIELDS = ("weekday", "starts_at", "ends_at", "kind")


@dataclass
class MeetingDetails:
    weekday: int
    starts_at: time
    ends_at: time
    kind: str = "lecture"


def _clean_meeting(
    db: Session, section: Section, details: MeetingDetails, existing: Meeting | None
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if not 0 <= details.weekday <= 6:
        errors["weekday"] = _("Choose a day of the week.")
    if details.starts_at >= details.ends_at:
        errors["ends_at"] = _("A meeting must end after it starts.")
    if details.kind not in MEETING_KINDS:
        errors["kind"] = _("The kind is one of: %(kinds)s.", kinds=", ".join(MEETING_KINDS))
    if not errors:
        candidate = Meeting(
            weekday=details.weekday, starts_at=details.starts_at, ends_at=details.ends_at
        )
        for other in section_meetings(db, section, include_archived=False):
            if other is not existing and candidate.overlaps(other):
                errors["starts_at"] = _(
                    "This overlaps the section's meeting %(label)s.", label=other.label
                )
                break
    _raise_if(errors)
    return {
        "weekday": details.weekday,
        "starts_at": details.starts_at,
        "ends_at": details.ends_at,
        "kind": details.kind,
    }


def add_meeting(
    db: Session, section: Section, details: MeetingDetails, *, actor: User | None
) -> Meeting:
    values = _clean_meeting(db, section, details, None)
    return add_and_record(
        db,
        Meeting(section_id=section.id, **values),
        actor=actor,
        entity_type="meeting",
        summary=lambda meeting: f"Added meeting {meeting.label} to {section.label}",
        after={"section": section.label, **values},
    )


def update_meeting(
    db: Session, meeting: Meeting, details: MeetingDetails, *, actor: User | None
) -> Meeting:
    apply_and_record(
        db,
        meeting,
        _clean_meeting(db, meeting.section, details, meeting),
        MEETING_FIELDS,
        actor=actor,
        entity_type="meeting",
        summary=lambda _new: f"Edited meeting of {meeting.section.label}: now {meeting.label}",
    )
    return meeting


def get_meeting(db: Session, meeting_id: uuid.UUID) -> Meeting:
    return _get(db, Meeting, meeting_id)


# --- Archiving -----------------------------------------------------------------------------------


def _label_of(item: Term | Course | Section | Meeting) -> str:
    if isinstance(item, Term | Course):
        return item.code
    if isinstance(item, Section):
        return f"{item.label} ({item.term.code})"
    return f"{item.section.label} {item.label}"


def set_archived(
    db: Session,
    item: Term | Course | Section | Meeting,
    archived: bool,
    *,
    actor: User | None,
    now: datetime,
    undo: bool = False,
) -> str:
    """Archive (soft delete) or restore; returns a sentence for the admin. A repeated click is
    harmless (a sentence, no change); an Undo (`undo`) with nothing left to undo is refused."""
    kind = type(item).__name__.lower()
    label = _label_of(item)
    says = ARCHIVING_SAYS[kind]
    if archived == item.is_deleted:
        state = "archived" if archived else "active"
        if undo:
            raise ValidationError(str(says[f"undo {state}"]) % {"label": label})
        return str(says[f"is {state}"]) % {"label": label}
    if not archived:
        _ensure_restorable(db, item)
    tombstone_and_record(
        db,
        item,
        now if archived else None,
        actor=actor,
        action=f"{kind}.{'archive' if archived else 'restore'}",
        entity_type=kind,
        summary=f"{'Archived' if archived else 'Restored'} {kind} {label}",
    )
    message = str(says["archived" if archived else "restored"]) % {"label": label}
    if archived and isinstance(item, Section) and item.enrolled_count:
        message += " " + ngettext(
            "%(num)d student is still enrolled; they keep their registration, and nobody new "
            "can register.",
            "%(num)d students are still enrolled; they keep their registrations, and nobody new "
            "can register.",
            item.enrolled_count,
        )
    return message


def _ensure_restorable(db: Session, item: Term | Course | Section | Meeting) -> None:
    if isinstance(item, Section) and (item.term.is_deleted or item.course.is_deleted):
        raise ValidationError(_("Restore the section's term and course first."))
    if isinstance(item, Meeting):
        if item.section.is_deleted:
            raise ValidationError(_("Restore the section first."))
        details = MeetingDetails(item.weekday, item.starts_at, item.ends_at, item.kind)
        _clean_meeting(db, item.section, details, item)
