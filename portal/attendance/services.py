"""Lab sessions and attendance: who may take it, one record per student and session, and rates.

Attendance rate rule (documented in the README): present and late count as attended, absent as
missed; excused sessions and students not yet recorded are left out of the rate altogether.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal.audit.services import tombstone_and_record
from portal.auth import access
from portal.catalogue.services import lock_section
from portal.errors import Forbidden, NotFound, ValidationError
from portal.models import (
    ATTENDANCE_STATUS_LABELS,
    ATTENDANCE_STATUSES,
    AttendanceRecord,
    LabSession,
    Registration,
    Section,
    User,
)

STATUS_LABELS = ATTENDANCE_STATUS_LABELS


# --- Who may take attendance ----------------------------------------------------------------------


def ensure_can_take(user: User, section: Section) -> None:
    """The section's staff or an administrator (`access.may_take_attendance`)."""
    if not access.may_take_attendance(user, section):
        raise Forbidden(_("You are not assigned to %(label)s.", label=section.label))


# --- Rates ----------------------------------------------------------------------------------------


@dataclass
class Rate:
    present: int = 0
    late: int = 0
    absent: int = 0
    excused: int = 0

    def add(self, status: str, count: int = 1) -> None:
        setattr(self, status, getattr(self, status) + count)

    @property
    def attended(self) -> int:
        return self.present + self.late

    @property
    def counted(self) -> int:
        """Sessions that count towards the rate (excused ones do not)."""
        return self.present + self.late + self.absent

    @property
    def recorded(self) -> int:
        return self.counted + self.excused

    @property
    def rate(self) -> float | None:
        """Attended share in percent, or None when nothing counts yet."""
        return self.attended / self.counted * 100 if self.counted else None


# --- Lab sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabSessionInput:
    held_on: date
    starts_at: time
    ends_at: time
    room: str = ""


def get_lab_session(
    db: Session, lab_session_id: uuid.UUID, *, include_deleted: bool = False
) -> LabSession:
    """The lab session; raises NotFound. A deleted one only with `include_deleted` (to restore
    it)."""
    query = select(LabSession).where(LabSession.id == lab_session_id)
    if not include_deleted:
        query = query.where(LabSession.deleted_at.is_(None))
    lab_session = db.scalar(
        query.options(
            selectinload(LabSession.section).selectinload(Section.course),
            selectinload(LabSession.section).selectinload(Section.term),
        )
    )
    if lab_session is None:
        raise NotFound(_("There is no such lab session."))
    return lab_session


def lab_sessions(db: Session, section_id: uuid.UUID) -> list[LabSession]:
    return list(
        db.scalars(
            select(LabSession)
            .where(LabSession.section_id == section_id, LabSession.deleted_at.is_(None))
            .order_by(LabSession.held_on, LabSession.starts_at)
        )
    )


def create_lab_session(
    db: Session,
    actor: User,
    section: Section,
    data: LabSessionInput,
    *,
    row_id: uuid.UUID | None = None,
) -> LabSession:
    """Add a lab session; `row_id` keeps the id a device gave it offline."""
    ensure_can_take(actor, section)
    _check_session(section, data)
    lab_session = LabSession(
        id=row_id or uuid.uuid4(),
        section_id=section.id,
        held_on=data.held_on,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        room=data.room.strip() or section.room,
    )
    db.add(lab_session)
    db.flush()
    return lab_session


def _check_session(section: Section, data: LabSessionInput) -> None:
    if data.starts_at >= data.ends_at:
        raise ValidationError(_("A lab session must end after it starts."))
    term = section.term
    if not term.starts_on <= data.held_on <= term.ends_on:
        raise ValidationError(
            _(
                "%(day)s is outside %(term)s (%(first)s to %(last)s).",
                day=format(data.held_on, "%d %b %Y"),
                term=term.name,
                first=format(term.starts_on, "%d %b %Y"),
                last=format(term.ends_on, "%d %b %Y"),
            )
        )


def update_lab_session(
    db: Session, actor: User, lab_session: LabSession, data: LabSessionInput
) -> LabSession:
    """Change a lab session's date, times or room; its attendance records stay."""
    section = lab_session.section
    ensure_can_take(actor, section)
    _check_session(section, data)
    lab_session.held_on = data.held_on
    lab_session.starts_at = data.starts_at
    lab_session.ends_at = data.ends_at
    lab_session.room = data.room.strip() or section.room
    db.flush()
    return lab_session


def delete_lab_session(db: Session, actor: User, lab_session: LabSession, *, now: datetime) -> str:
    """Remove a lab session (a tombstone: its records no longer count, and
    `restore_lab_session` brings them back); returns its label."""
    ensure_can_take(actor, lab_session.section)
    tombstone_and_record(
        db,
        lab_session,
        now,
        actor=actor,
        action="lab_session.delete",
        entity_type="lab_session",
        summary=f"Deleted the lab session of {lab_session.label} in {lab_session.section.label}",
    )
    return lab_session.label


def restore_lab_session(db: Session, actor: User, lab_session: LabSession) -> LabSession:
    """Undo a deletion: the session and its attendance records count again."""
    ensure_can_take(actor, lab_session.section)
    lock_section(db, lab_session.section_id)
    db.refresh(lab_session)  # the lock is held: what another request did is seen now
    if lab_session.deleted_at is None:
        raise ValidationError(
            _(
                "Nothing to undo: the lab session of %(label)s is not deleted.",
                label=lab_session.label,
            )
        )
    tombstone_and_record(
        db,
        lab_session,
        None,
        actor=actor,
        action="lab_session.restore",
        entity_type="lab_session",
        summary=f"Restored the lab session of {lab_session.label} in {lab_session.section.label}",
    )
    return lab_session


def recorded_count(db: Session, lab_session: LabSession) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(AttendanceRecord)
            .where(AttendanceRecord.lab_session_id == lab_session.id)
        )
        or 0
    )


# --- Taking attendance ----------------------------------------------------------------------------


def roster(db: Session, section_id: uuid.UUID) -> list[User]:
    """The enrolled students, by name."""
    return list(
        db.scalars(
            select(User)
            .join(Registration, Registration.student_id == User.id)
            .where(Registration.section_id == section_id, Registration.status == "enrolled")
            .order_by(User.full_name, User.username)
        )
    )


@dataclass
class SheetLine:
    student: User
    status: str | None


def sheet(db: Session, lab_session: LabSession) -> list[SheetLine]:
    """The whole roster with each student's status for this session (two queries)."""
    statuses = dict(
        db.execute(
            select(AttendanceRecord.student_id, AttendanceRecord.status).where(
                AttendanceRecord.lab_session_id == lab_session.id
            )
        ).all()
    )
    return [
        SheetLine(student, statuses.get(student.id))
        for student in roster(db, lab_session.section_id)
    ]


def sheet_counts(lines: list[SheetLine]) -> Rate:
    counts = Rate()
    for line in lines:
        if line.status is not None:
            counts.add(line.status)
    return counts


def _ensure_enrolled(db: Session, section_id: uuid.UUID, student_id: uuid.UUID) -> None:
    enrolled = db.scalar(
        select(Registration.id).where(
            Registration.section_id == section_id,
            Registration.student_id == student_id,
            Registration.status == "enrolled",
        )
    )
    if enrolled is None:
        raise ValidationError(_("That student is not enrolled in this section."))


def record_attendance(
    db: Session,
    actor: User,
    lab_session: LabSession,
    student_id: uuid.UUID,
    status: str,
    *,
    row_id: uuid.UUID | None = None,
) -> AttendanceRecord:
    """Set one student's status for one session (create or change). A new record takes
    `row_id` when given (the id a device made offline)."""
    ensure_can_take(actor, lab_session.section)
    if status not in ATTENDANCE_STATUSES:
        raise ValidationError(
            _("The status must be one of: %(statuses)s.", statuses=", ".join(ATTENDANCE_STATUSES))
        )
    _ensure_enrolled(db, lab_session.section_id, student_id)
    for _attempt in range(2):
        entry = db.scalar(
            select(AttendanceRecord).where(
                AttendanceRecord.lab_session_id == lab_session.id,
                AttendanceRecord.student_id == student_id,
            )
        )
        if entry is not None:
            entry.status = status
            entry.recorded_by_id = actor.id
            db.flush()
            return entry
        entry = AttendanceRecord(
            id=row_id or uuid.uuid4(),
            lab_session_id=lab_session.id,
            student_id=student_id,
            status=status,
            recorded_by_id=actor.id,
        )
        try:
            with db.begin_nested():
                db.add(entry)
                db.flush()
        except IntegrityError:
            continue  # someone recorded this student at the same moment: update theirs
        return entry
    raise ValidationError(_("The attendance could not be saved; try again."))


def mark_unrecorded(
    db: Session, actor: User, lab_session: LabSession, status: str = "present"
) -> int:
    """Give every student without a record yet the same status; returns how many."""
    ensure_can_take(actor, lab_session.section)
    count = 0
    for line in sheet(db, lab_session):
        if line.status is None:
            record_attendance(db, actor, lab_session, line.student.id, status)
            count += 1
    return count


# --- Summaries ------------------------------------------------------------------------------------


@dataclass
class SectionAttendance:
    sessions: list[LabSession]
    students: list[tuple[User, Rate]]
    per_session: dict[uuid.UUID, Rate] = field(default_factory=dict)

    @property
    def overall(self) -> Rate:
        total = Rate()
        for _student, rate in self.students:
            for status in ATTENDANCE_STATUSES:
                total.add(status, getattr(rate, status))
        return total


def section_summary(db: Session, section: Section) -> SectionAttendance:
    """Per-student and per-session rates of one section, in four queries whatever its size."""
    sessions = lab_sessions(db, section.id)
    students = roster(db, section.id)
    by_student: dict[uuid.UUID, Rate] = defaultdict(Rate)
    by_session: dict[uuid.UUID, Rate] = defaultdict(Rate)
    rows = db.execute(
        select(
            AttendanceRecord.lab_session_id,
            AttendanceRecord.student_id,
            AttendanceRecord.status,
            func.count(),
        )
        .join(AttendanceRecord.lab_session)
        .where(LabSession.section_id == section.id, LabSession.deleted_at.is_(None))
        .group_by(
            AttendanceRecord.lab_session_id, AttendanceRecord.student_id, AttendanceRecord.status
        )
    )
    enrolled = {student.id for student in students}
    for lab_session_id, student_id, status, count in rows:
        if student_id in enrolled:  # records of students who dropped later do not count
            by_student[student_id].add(status, count)
            by_session[lab_session_id].add(status, count)
    return SectionAttendance(
        sessions=sessions,
        students=[(student, by_student[student.id]) for student in students],
        per_session=dict(by_session),
    )


def student_rates(db: Session, student: User) -> dict[uuid.UUID, Rate]:
    """The student's own attendance per section id (one query)."""
    rates: dict[uuid.UUID, Rate] = defaultdict(Rate)
    for section_id, status, count in db.execute(
        select(LabSession.section_id, AttendanceRecord.status, func.count())
        .join(AttendanceRecord.lab_session)
        .where(AttendanceRecord.student_id == student.id, LabSession.deleted_at.is_(None))
        .group_by(LabSession.section_id, AttendanceRecord.status)
    ):
        rates[section_id].add(status, count)
    return dict(rates)
