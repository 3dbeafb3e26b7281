"""Every table of the portal, as typed SQLAlchemy 2 models.

Ids are UUIDs made by the application (devices create rows offline), every row carries
created_at/updated_at, and rows that sync must be able to delete carry deleted_at (tombstones).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import Base

ROLES = ("student", "instructor", "lab_staff", "admin")
REGISTRATION_STATUSES = ("enrolled", "waitlisted", "dropped")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone (SQLite has none) and hands back aware datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Record:
    """Columns every synchronised row has."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SoftDeletable:
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class User(Record, SoftDeletable, UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('student', 'instructor', 'lab_staff', 'admin')", name="role"),
    )

    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[str] = mapped_column(String(20), index=True)
    student_number: Mapped[str | None] = mapped_column(String(20), unique=True, default=None)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    registrations: Mapped[list[Registration]] = relationship(
        back_populates="student", foreign_keys="Registration.student_id"
    )

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated account cannot log in
        return self.active and self.deleted_at is None

    def get_id(self) -> str:
        return str(self.id)

    @property
    def role_label(self) -> str:
        return {"lab_staff": "Lab staff"}.get(self.role, self.role.capitalize())

    def __repr__(self) -> str:
        return f"<User {self.username} ({self.role})>"


class Term(Record, SoftDeletable, Base):
    __tablename__ = "terms"
    __table_args__ = (
        CheckConstraint("starts_on <= ends_on", name="dates_in_order"),
        CheckConstraint("registration_opens_at <= registration_closes_at", name="window_in_order"),
        CheckConstraint("max_credits > 0", name="max_credits_positive"),
    )

    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    registration_opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registration_closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    add_drop_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    max_credits: Mapped[int] = mapped_column(Integer, default=18)

    sections: Mapped[list[Section]] = relationship(back_populates="term")


class Course(Record, SoftDeletable, Base):
    __tablename__ = "courses"
    __table_args__ = (CheckConstraint("credits >= 0", name="credits_not_negative"),)

    code: Mapped[str] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    credits: Mapped[int] = mapped_column(Integer)
    department: Mapped[str] = mapped_column(String(100), index=True)

    sections: Mapped[list[Section]] = relationship(back_populates="course")
    prerequisites: Mapped[list[Prerequisite]] = relationship(
        back_populates="course", foreign_keys="Prerequisite.course_id"
    )


class Prerequisite(Record, SoftDeletable, Base):
    """`course` may only be taken after `required_course` was passed with `min_grade` or better."""

    __tablename__ = "prerequisites"
    __table_args__ = (UniqueConstraint("course_id", "required_course_id"),)

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    required_course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"))
    min_grade: Mapped[str] = mapped_column(String(2), default="D")

    course: Mapped[Course] = relationship(back_populates="prerequisites", foreign_keys=[course_id])
    required_course: Mapped[Course] = relationship(foreign_keys=[required_course_id])


class Section(Record, SoftDeletable, Base):
    __tablename__ = "sections"
    __table_args__ = (
        UniqueConstraint("course_id", "term_id", "number"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("waitlist_capacity >= 0", name="waitlist_capacity_not_negative"),
        CheckConstraint("enrolled_count >= 0 AND enrolled_count <= capacity", name="seats"),
        CheckConstraint(
            "waitlist_count >= 0 AND waitlist_count <= waitlist_capacity", name="waitlist_seats"
        ),
    )

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    term_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terms.id"), index=True)
    number: Mapped[str] = mapped_column(String(10))
    instructor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    lab_staff_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    capacity: Mapped[int] = mapped_column(Integer)
    waitlist_capacity: Mapped[int] = mapped_column(Integer, default=0)
    room: Mapped[str] = mapped_column(String(50), default="")
    # Counters kept by the registration rules with conditional UPDATEs (never read-then-write).
    enrolled_count: Mapped[int] = mapped_column(Integer, default=0)
    waitlist_count: Mapped[int] = mapped_column(Integer, default=0)
    waitlist_seq: Mapped[int] = mapped_column(Integer, default=0)

    course: Mapped[Course] = relationship(back_populates="sections")
    term: Mapped[Term] = relationship(back_populates="sections")
    instructor: Mapped[User | None] = relationship(foreign_keys=[instructor_id])
    lab_staff: Mapped[User | None] = relationship(foreign_keys=[lab_staff_id])
    meetings: Mapped[list[Meeting]] = relationship(
        back_populates="section", order_by="(Meeting.weekday, Meeting.starts_at)"
    )
    registrations: Mapped[list[Registration]] = relationship(back_populates="section")

    @property
    def seats_left(self) -> int:
        return max(self.capacity - self.enrolled_count, 0)

    @property
    def label(self) -> str:
        return f"{self.course.code}-{self.number}"


class Meeting(Record, SoftDeletable, Base):
    __tablename__ = "meetings"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday"),
        CheckConstraint("starts_at < ends_at", name="times_in_order"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[time] = mapped_column(Time)
    ends_at: Mapped[time] = mapped_column(Time)
    kind: Mapped[str] = mapped_column(String(20), default="lecture")

    section: Mapped[Section] = relationship(back_populates="meetings")

    @property
    def label(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.starts_at:%H:%M}–{self.ends_at:%H:%M}"

    def overlaps(self, other: Meeting) -> bool:
        return (
            self.weekday == other.weekday
            and self.starts_at < other.ends_at
            and other.starts_at < self.ends_at
        )


class Registration(Record, Base):
    __tablename__ = "registrations"
    __table_args__ = (
        UniqueConstraint("student_id", "section_id"),
        CheckConstraint("status IN ('enrolled', 'waitlisted', 'dropped')", name="status"),
        # Covers the admin dashboard's grade distribution (final grades of enrolled students
        # per section): answered from the index alone, without reading the rows.
        Index("ix_registrations_section_status_grade", "section_id", "status", "final_grade"),
    )

    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    waitlist_position: Mapped[int | None] = mapped_column(Integer, default=None)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    dropped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    final_grade: Mapped[str | None] = mapped_column(String(2), default=None)

    student: Mapped[User] = relationship(back_populates="registrations", foreign_keys=[student_id])
    section: Mapped[Section] = relationship(back_populates="registrations")


class AuditEntry(Record, Base):
    """Who did what, when, with the values before and after. Written, never edited."""

    __tablename__ = "audit_entries"

    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity_type: Mapped[str] = mapped_column(String(64), default="", index=True)
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])


# --- Teaching: grade scales, assessments and marks, attendance, lab-report submissions ---------

ASSESSMENT_KINDS = ("lab", "assignment", "exam")
ATTENDANCE_STATUSES = ("present", "late", "absent", "excused")


class GradeScale(Record, SoftDeletable, Base):
    """Minimum course percentage for each letter grade. The row marked default is used;
    without any row the standard scale in portal/grading/scale.py applies."""

    __tablename__ = "grade_scales"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    # [[letter, minimum percentage], ...] best letter first, e.g. [["A", 93.0], ["A-", 90.0]]
    thresholds: Mapped[list[Any]] = mapped_column(JSON)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class Assessment(Record, SoftDeletable, Base):
    """A lab, assignment or exam of one section, worth `weight` percent of the course."""

    __tablename__ = "assessments"
    __table_args__ = (
        CheckConstraint("kind IN ('lab', 'assignment', 'exam')", name="kind"),
        CheckConstraint("weight >= 0 AND weight <= 100", name="weight_range"),
        CheckConstraint("max_points > 0", name="max_points_positive"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    weight: Mapped[float] = mapped_column(Float)
    max_points: Mapped[float] = mapped_column(Float)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)

    section: Mapped[Section] = relationship(foreign_keys=[section_id])
    marks: Mapped[list[Mark]] = relationship(back_populates="assessment")


class Mark(Record, Base):
    """One student's points for one assessment; points None means the mark was cleared."""

    __tablename__ = "marks"
    __table_args__ = (
        UniqueConstraint("assessment_id", "student_id"),
        CheckConstraint("points IS NULL OR points >= 0", name="points_not_negative"),
    )

    assessment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assessments.id"), index=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    points: Mapped[float | None] = mapped_column(Float, default=None)
    entered_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)

    assessment: Mapped[Assessment] = relationship(back_populates="marks")
    student: Mapped[User] = relationship(foreign_keys=[student_id])
    entered_by: Mapped[User | None] = relationship(foreign_keys=[entered_by_id])


class GradeFinalisation(Record, Base):
    """A section whose grades were finalised: its marks are locked from then on."""

    __tablename__ = "grade_finalisations"

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), unique=True)
    finalised_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    finalised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    grade_scale: Mapped[list[Any]] = mapped_column(JSON)  # the thresholds that were applied

    section: Mapped[Section] = relationship(foreign_keys=[section_id])
    finalised_by: Mapped[User | None] = relationship(foreign_keys=[finalised_by_id])


class LabSession(Record, SoftDeletable, Base):
    __tablename__ = "lab_sessions"
    __table_args__ = (CheckConstraint("starts_at < ends_at", name="times_in_order"),)

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    held_on: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[time] = mapped_column(Time)
    ends_at: Mapped[time] = mapped_column(Time)
    room: Mapped[str] = mapped_column(String(50), default="")

    section: Mapped[Section] = relationship(foreign_keys=[section_id])
    records: Mapped[list[AttendanceRecord]] = relationship(back_populates="lab_session")

    @property
    def label(self) -> str:
        return f"{self.held_on:%a %d %b %Y} {self.starts_at:%H:%M}–{self.ends_at:%H:%M}"


class AttendanceRecord(Record, Base):
    __tablename__ = "attendance_records"
    __table_args__ = (
        UniqueConstraint("lab_session_id", "student_id"),
        CheckConstraint("status IN ('present', 'late', 'absent', 'excused')", name="status"),
    )

    lab_session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lab_sessions.id"), index=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)

    lab_session: Mapped[LabSession] = relationship(back_populates="records")
    student: Mapped[User] = relationship(foreign_keys=[student_id])


class StoredFile(Record, Base):
    """File content, named by its sha256 only (the path on disk derives from the hash)."""

    __tablename__ = "stored_files"
    __table_args__ = (CheckConstraint("size >= 0", name="size_not_negative"),)

    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))


class Submission(Record, Base):
    """One upload of a lab report; a resubmission adds a row with the next attempt number."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("assessment_id", "student_id", "attempt"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
    )

    assessment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assessments.id"), index=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    file_sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"), index=True)
    original_name: Mapped[str] = mapped_column(String(255))  # metadata only, never a path
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    late: Mapped[bool] = mapped_column(Boolean, default=False)

    assessment: Mapped[Assessment] = relationship(foreign_keys=[assessment_id])
    student: Mapped[User] = relationship(foreign_keys=[student_id])


# --- Personal API tokens -------------------------------------------------------------------------


class ApiToken(Record, Base):
    """A personal token for the REST API. Only the SHA-256 of the secret is stored: the secret is
    shown once, when the token is made. Revoked tokens stay listed (revoked_at set)."""

    __tablename__ = "api_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to recognise it
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
