"""Registration rules: window, prerequisites, conflicts, credit limit, seats and the waitlist.

Every entry point (web pages, JSON API, CSV import, sync) calls these functions, and each
registration, drop and waitlist promotion is audited here, in the transaction of the change.
Seats and waitlist places are taken with one conditional UPDATE whose row count decides, so two
requests for the last seat can never both win, on SQLite or on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from babel.dates import format_date, format_time
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, contains_eager, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from portal.audit.services import record
from portal.catalogue.services import lock_section
from portal.errors import RegistrationError
from portal.grading.scale import meets_minimum
from portal.models import Course, Prerequisite, Registration, Section, Term, User
from portal.persistence import flush_unique
from portal.registration.summaries import RegistrationSummary, TermLine

ACTIVE_STATUSES = ("enrolled", "waitlisted")


def _format_when(moment: datetime) -> str:
    """A deadline in a message: in the person's language and the campus time zone, with the
    zone named (the message is read away from the page's own dates)."""
    if get_locale() is None:  # outside a request (a job, a test of the rule itself)
        return moment.strftime("%d %b %Y %H:%M UTC")
    stored = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    zone, locale = get_timezone(), get_locale()
    local = stored.astimezone(zone)
    day = format_date(local, "medium", locale=locale)
    clock = format_time(local, "short", locale=locale)
    when = str(locale.datetime_formats["medium"]).replace("{1}", day).replace("{0}", clock)
    return f"{when} ({zone})"


def ensure_registration_open(term: Term, now: datetime) -> None:
    if now < term.registration_opens_at:
        raise RegistrationError(
            _(
                "Registration for %(name)s opens on %(registration_opens_at)s.",
                name=term.name,
                registration_opens_at=_format_when(term.registration_opens_at),
            )
        )
    if now > term.registration_closes_at:
        raise RegistrationError(
            _(
                "Registration for %(name)s closed on %(registration_closes_at)s.",
                name=term.name,
                registration_closes_at=_format_when(term.registration_closes_at),
            )
        )


def ensure_drop_allowed(term: Term | TermLine, now: datetime) -> None:
    if now > term.add_drop_deadline:
        raise RegistrationError(
            _(
                "The add/drop deadline for %(name)s was %(add_drop_deadline)s; contact the "
                "registrar's office to withdraw.",
                name=term.name,
                add_drop_deadline=_format_when(term.add_drop_deadline),
            )
        )


def ensure_can_drop(registration: Registration | RegistrationSummary, now: datetime) -> None:
    """Every rule a drop must pass, without writing: the registration is still active and its
    term's add/drop deadline has not passed. (A final grade is given after the deadline; one
    given before it, an administrator's correction, does not stop a drop: sync merges the two.)"""
    section = registration.section
    if registration.status == "dropped":
        raise RegistrationError(_("You have already dropped %(label)s.", label=section.label))
    ensure_drop_allowed(section.term, now)


def drop_blocker(registration: Registration | RegistrationSummary, now: datetime) -> str | None:
    """Why dropping `registration` cannot succeed now (a message), or None when it can: the
    pages offer Drop only where it can succeed, from the rule the drop itself checks."""
    try:
        ensure_can_drop(registration, now)
    except RegistrationError as error:
        return str(error)
    return None


def ensure_prerequisites_met(db: Session, student: User, course: Course) -> None:
    prerequisites = db.scalars(
        select(Prerequisite)
        .where(Prerequisite.course_id == course.id, Prerequisite.deleted_at.is_(None))
        .options(selectinload(Prerequisite.required_course))
    ).all()
    if not prerequisites:
        return
    grades = db.execute(
        select(Section.course_id, Registration.final_grade)
        .join(Registration.section)
        .where(
            Registration.student_id == student.id,
            Registration.status == "enrolled",
            Registration.final_grade.is_not(None),
            Section.course_id.in_([p.required_course_id for p in prerequisites]),
        )
    ).all()
    best: dict[object, list[str]] = {}
    for course_id, grade in grades:
        best.setdefault(course_id, []).append(grade or "")
    missing = [
        f"{p.required_course.code} with {p.min_grade} or better"
        for p in prerequisites
        if not any(meets_minimum(g, p.min_grade) for g in best.get(p.required_course_id, []))
    ]
    if missing:
        raise RegistrationError(
            _("%(code)s requires ", code=course.code) + "; ".join(missing) + "."
        )


def _active_registrations(db: Session, student: User, term: Term) -> list[Registration]:
    return list(
        db.scalars(
            select(Registration)
            .join(Registration.section)
            .join(Section.course)
            .where(
                Registration.student_id == student.id,
                Registration.status.in_(ACTIVE_STATUSES),
                Section.term_id == term.id,
            )
            .options(
                # section and course from the joins (one statement); meetings apart
                contains_eager(Registration.section).options(
                    contains_eager(Section.course), selectinload(Section.meetings)
                )
            )
        )
    )


def ensure_no_time_conflict(section: Section, current: list[Registration]) -> None:
    for registration in current:
        other = registration.section
        if other.id == section.id:
            continue
        for mine in section.meetings:
            for theirs in other.meetings:
                if mine.overlaps(theirs):
                    raise RegistrationError(
                        _(
                            "%(section)s meets %(meeting)s, which clashes with %(other)s "
                            "(%(other_meeting)s).",
                            section=section.label,
                            meeting=mine.label,
                            other=other.label,
                            other_meeting=theirs.label,
                        )
                    )


def ensure_credit_limit(section: Section, current: list[Registration]) -> None:
    term = section.term
    taken = sum(r.section.course.credits for r in current if r.section.id != section.id)
    if taken + section.course.credits > term.max_credits:
        raise RegistrationError(
            _(
                "Adding %(course)s (%(credits)s credits) would bring you to %(total)s credits; "
                "the limit for %(term)s is %(limit)s.",
                course=section.course.code,
                credits=section.course.credits,
                total=taken + section.course.credits,
                term=term.name,
                limit=term.max_credits,
            )
        )


def _lock_student(db: Session, student: User) -> None:
    """Serialise one student's registrations (PostgreSQL row lock; SQLite's write lock)."""
    db.execute(select(User.id).where(User.id == student.id).with_for_update())


def _take_seat(db: Session, section: Section) -> bool:
    result = cast(  # an UPDATE's result: it has a rowcount
        "CursorResult[Any]",
        db.execute(
            update(Section)
            .where(Section.id == section.id, Section.enrolled_count < Section.capacity)
            .values(enrolled_count=Section.enrolled_count + 1)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


def _take_waitlist_place(db: Session, section: Section) -> int | None:
    """The new waitlist position, or None when the waitlist is full too."""
    position = db.execute(
        update(Section)
        .where(Section.id == section.id, Section.waitlist_count < Section.waitlist_capacity)
        .values(waitlist_count=Section.waitlist_count + 1, waitlist_seq=Section.waitlist_seq + 1)
        .returning(Section.waitlist_seq)
        .execution_options(synchronize_session=False)
    ).scalar()
    return position


def ensure_can_register(
    db: Session, student: User, section: Section, now: datetime
) -> Registration | None:
    """Every rule but the seats, without writing: the window, duplicates, one section per course,
    prerequisites, time clashes and the credit limit. Returns the student's earlier (dropped)
    registration in the section, if any."""
    if section.deleted_at is not None:
        raise RegistrationError(_("%(label)s is no longer offered.", label=section.label))
    ensure_registration_open(section.term, now)
    existing = db.scalar(
        select(Registration).where(
            Registration.student_id == student.id, Registration.section_id == section.id
        )
    )
    if existing is not None and existing.status == "enrolled":
        raise RegistrationError(_("You are already enrolled in %(label)s.", label=section.label))
    if existing is not None and existing.status == "waitlisted":
        raise RegistrationError(
            _(
                "You are already on the waitlist for %(label)s (position %(waitlist_position)s).",
                label=section.label,
                waitlist_position=existing.waitlist_position,
            )
        )
    current = _active_registrations(db, student, section.term)
    same_course = [r for r in current if r.section.course_id == section.course_id]
    if same_course:
        raise RegistrationError(
            _(
                "You are already registered in %(label)s, another section of %(code)s.",
                label=same_course[0].section.label,
                code=section.course.code,
            )
        )
    ensure_prerequisites_met(db, student, section.course)
    ensure_no_time_conflict(section, current)
    ensure_credit_limit(section, current)

    return existing


def registration_blocker(db: Session, student: User, section: Section, now: datetime) -> str | None:
    """Why registering for `section` cannot succeed now (a message), or None when it can: the
    pages offer Register only where it can succeed. The seats are decided at registration."""
    try:
        ensure_can_register(db, student, section, now)
    except RegistrationError as error:
        return str(error)
    if section.seats_left == 0 and section.waitlist_count >= section.waitlist_capacity:
        return f"{section.label} is full and its waitlist is full too."
    return None


def _record(
    db: Session,
    actor: User | None,
    action: str,
    registration: Registration,
    summary: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    reason: str,
) -> None:
    record(
        db,
        actor,
        f"registration.{action}",
        entity_type="registration",
        entity_id=registration.id,
        summary=summary,
        before=before,
        after=after,
        reason=reason,
    )


# What a Core UPDATE of the section changes (seats, waitlist): read again after it, and only it
# (a whole refresh would load the section's term and course again too).
SEAT_COUNTS = ("enrolled_count", "waitlist_count", "waitlist_seq")


def _where(section: Section) -> str:
    return f"{section.label} ({section.term.code})"


def register(
    db: Session,
    student: User,
    section: Section,
    *,
    now: datetime,
    row_id: uuid.UUID | None = None,
    actor: User | None = None,
    reason: str = "",
) -> Registration:
    """Enrol the student, or waitlist them when the section is full. A new registration takes
    `row_id` when given (the id a device made offline). Audited as made by `actor` (an
    administrator's import), by default the student; `reason` says how it came."""
    if student.role != "student":
        raise RegistrationError(_("Only students can register for sections."))
    if section.deleted_at is not None:
        raise RegistrationError(_("%(label)s is no longer offered.", label=section.label))
    _lock_student(db, student)
    existing = ensure_can_register(db, student, section, now)

    registration = existing or Registration(
        id=row_id or uuid.uuid4(), student_id=student.id, section_id=section.id
    )
    # The registration holds the section and student it is for (the answer reads them; the
    # identity map holds objects only while something refers to them).
    set_committed_value(registration, "section", section)
    set_committed_value(registration, "student", student)
    before = {"status": existing.status} if existing is not None else None
    registration.registered_at = now
    registration.dropped_at = None
    lock_section(db, section.id)  # a freed seat cannot slip in before the waitlist
    if _take_seat(db, section):
        registration.status = "enrolled"
        registration.enrolled_at = now
        registration.waitlist_position = None
    else:
        position = _take_waitlist_place(db, section)
        if position is None:
            raise RegistrationError(
                _(
                    "%(label)s is full and its waitlist is full too (%(waitlist_capacity)s "
                    "places).",
                    label=section.label,
                    waitlist_capacity=section.waitlist_capacity,
                )
            )
        registration.status = "waitlisted"
        registration.waitlist_position = position
        registration.enrolled_at = None
    if existing is None:
        db.add(registration)
    flush_unique(
        db,
        lambda: RegistrationError(
            _("You are already registered in %(label)s.", label=section.label)
        ),
    )
    db.refresh(section, SEAT_COUNTS)
    after: dict[str, Any] = {
        "student_id": student.id,
        "section_id": section.id,
        "status": registration.status,
    }
    name = f"{student.full_name} ({student.username})"
    if registration.status == "enrolled":
        action, summary = "enrol", f"{name} enrolled in {_where(section)}"
    else:
        after["waitlist_position"] = registration.waitlist_position
        action, summary = (
            "waitlist",
            f"{name} joined the waitlist of {_where(section)} "
            f"at position {registration.waitlist_position}",
        )
    _record(
        db,
        actor or student,
        action,
        registration,
        summary,
        before=before,
        after=after,
        reason=reason,
    )
    return registration


def _one_less(db: Session, section: Section, counter: Any) -> None:
    """A seat (`Section.enrolled_count`) or a waitlist place (`Section.waitlist_count`) given
    back, in one UPDATE: two drops at once both count."""
    db.execute(
        update(Section)
        .where(Section.id == section.id)
        .values({counter: counter - 1})
        .execution_options(synchronize_session=False)
    )


def drop(
    db: Session,
    registration: Registration,
    *,
    now: datetime,
    actor: User | None = None,
    reason: str = "",
) -> Registration | None:
    """Drop an enrolment or leave the waitlist; returns the student promoted into the seat.
    Audited (the promotion too) as made by `actor`, by default the student; `reason` says how
    it came."""
    ensure_can_drop(registration, now)
    section = registration.section
    actor = actor or registration.student
    previous_status = registration.status
    before: dict[str, Any] = {"status": previous_status}
    if registration.waitlist_position is not None:
        before["waitlist_position"] = registration.waitlist_position
    registration.status = "dropped"
    registration.dropped_at = now
    registration.waitlist_position = None
    student = registration.student
    name = f"{student.full_name} ({student.username})"
    _record(
        db,
        actor,
        "leave_waitlist" if previous_status == "waitlisted" else "drop",
        registration,
        f"{name} left the waitlist of {_where(section)}"
        if previous_status == "waitlisted"
        else f"{name} dropped {_where(section)}",
        before=before,
        after={"status": "dropped"},
        reason=reason,
    )
    if previous_status == "waitlisted":
        _one_less(db, section, Section.waitlist_count)
        db.flush()
        db.refresh(section, SEAT_COUNTS)
        return None
    _one_less(db, section, Section.enrolled_count)
    db.flush()
    promoted = promote_from_waitlist(db, section, now=now, actor=actor, reason=reason)
    db.refresh(section, SEAT_COUNTS)
    return promoted


def promote_from_waitlist(
    db: Session, section: Section, *, now: datetime, actor: User | None, reason: str = ""
) -> Registration | None:
    """Move the first waitlisted student into a free seat, if there is one. Audited as made
    by `actor`, whose change freed the seat (a drop, a larger capacity)."""
    candidate = db.scalar(
        select(Registration)
        .where(Registration.section_id == section.id, Registration.status == "waitlisted")
        .order_by(Registration.waitlist_position)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if candidate is None or not _take_seat(db, section):
        return None
    _one_less(db, section, Section.waitlist_count)
    position = candidate.waitlist_position
    candidate.status = "enrolled"
    candidate.enrolled_at = now
    candidate.waitlist_position = None
    db.flush()
    student = candidate.student
    _record(
        db,
        actor,
        "promote",
        candidate,
        f"{student.full_name} ({student.username}) was promoted from the waitlist "
        f"into {_where(section)}",
        before={"status": "waitlisted", "waitlist_position": position},
        after={"status": "enrolled"},
        reason=reason,
    )
    return candidate
