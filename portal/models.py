"""Every table of the portal, as typed SQLAlchemy 2 models.

Ids are UUIDs made by the application (devices create rows offline), every row carries
created_at/updated_at, and rows that sync must be able to delete carry deleted_at (tombstones).
The models know nothing of Flask: portal/extensions.py binds Flask-SQLAlchemy to `Base`, and
`User` answers Flask-Login's questions itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

from babel.dates import get_day_names
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
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
    MetaData,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    event,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Each list of allowed values is declared once; CHECK constraints, forms and labels derive from it.
# The labels are lazy: said in the language of the request that shows them.
ROLE_LABELS = {
    "student": _l("Student"),
    "instructor": _l("Instructor"),
    "lab_staff": _l("Lab staff"),
    "admin": _l("Admin"),
}
ROLES = tuple(ROLE_LABELS)
REGISTRATION_STATUSES = ("enrolled", "waitlisted", "dropped")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def meeting_label(weekday: int, starts_at: time, ends_at: time) -> str:
    """A meeting as "Mon 09:00–10:30" (Meeting.label, and the catalogue's summaries), the day
    named in the request's language ("lun. 09:00–10:30"); in English outside a request."""
    return f"{weekday_name(weekday)} {starts_at:%H:%M}–{ends_at:%H:%M}"


def weekday_name(weekday: int) -> str:
    """The abbreviated name of a day (0 = Monday) in the request's language."""
    locale = get_locale()
    if locale is None or locale.language == "en":
        return WEEKDAYS[weekday]
    return str(get_day_names("abbreviated", locale=locale)[weekday])


def section_label(course_code: str, number: str) -> str:
    """A section as "CS101-001" (Section.label, and the catalogue's summaries)."""
    return f"{course_code}-{number}"


def one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's condition: `column` holds one of `values`.

    >>> one_of("role", ("student", "admin"))
    "role IN ('student', 'admin')"
    """
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def utcnow() -> datetime:
    """The portal's one clock: routes and commands pass its time to the services as `now`."""
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


class User(Record, SoftDeletable, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(one_of("role", ROLES), name="role"),)
    # account_source is read when it is first used, not returned by every INSERT.
    __mapper_args__ = {"eager_defaults": False}

    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[str] = mapped_column(String(20), index=True)
    student_number: Mapped[str | None] = mapped_column(String(20), unique=True, default=None)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Raised when the password changes: sessions signed in with an older value end (get_id).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A one-time password (CSV import, admin reset): a new one must be chosen at the next log-in.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Where the password is checked: "local" (password_hash) or "ldap" (the campus directory,
    # which also gives the name, e-mail and role at each sign-in; password_hash is then only the
    # verifier for the person's desktop copies, never accepted by the server itself).
    # The database's default only: an INSERT leaves the column out unless it is set.
    account_source: Mapped[str] = mapped_column(String(10), server_default="local")
    # When the directory last accepted the person's password (on the central server): a desktop
    # copy accepts the kept verifier offline for offline_sign_in_days after it.
    # (Like account_source, the database's default: an INSERT leaves the column out.)
    directory_checked_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, nullable=True, server_default=text("NULL")
    )
    # The language the person chose on their profile ("en", "ar", "fr"); None: their browser's
    # (Accept-Language), else the default_language setting (portal/i18n.py). Like
    # account_source, the database's default: an INSERT leaves the column out.
    language: Mapped[str | None] = mapped_column(
        String(8), nullable=True, server_default=text("NULL")
    )

    registrations: Mapped[list[Registration]] = relationship(
        back_populates="student", foreign_keys="Registration.student_id"
    )

    # What Flask-Login asks of a user (as its UserMixin answers it): a deactivated account
    # cannot log in, and a signed-in user is authenticated while active.
    @property
    def is_active(self) -> bool:
        return self.active and self.deleted_at is None

    @property
    def is_authenticated(self) -> bool:
        return self.is_active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """What the session remembers: the id and the session version (see session_version)."""
        return f"{self.id}:{self.session_version}"

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return self is other or (self.id is not None and self.id == other.id)

    @property
    def role_label(self) -> str:
        return str(ROLE_LABELS.get(self.role, self.role))

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
        return section_label(self.course.code, self.number)


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
        return meeting_label(self.weekday, self.starts_at, self.ends_at)

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
        CheckConstraint(one_of("status", REGISTRATION_STATUSES), name="status"),
        # Final grades of enrolled students per section, from the index alone (the admin
        # dashboard now reads section_grade_counts instead).
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

ASSESSMENT_KIND_LABELS = {"lab": _l("Lab"), "assignment": _l("Assignment"), "exam": _l("Exam")}
ASSESSMENT_KINDS = tuple(ASSESSMENT_KIND_LABELS)
ATTENDANCE_STATUS_LABELS = {
    "present": _l("Present"),
    "late": _l("Late"),
    "absent": _l("Absent"),
    "excused": _l("Excused"),
}
ATTENDANCE_STATUSES = tuple(ATTENDANCE_STATUS_LABELS)


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
        CheckConstraint(one_of("kind", ASSESSMENT_KINDS), name="kind"),
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
        CheckConstraint(one_of("status", ATTENDANCE_STATUSES), name="status"),
        # Records per lab session and status, from the index alone (the admin dashboard now
        # reads lab_session_attendance_counts instead).
        Index("ix_attendance_records_lab_session_status", "lab_session_id", "status"),
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


# --- Offline sync: devices, the server's change log, the device's outbox, conflicts ------------
# How these tables are used is told in portal/sync/PROTOCOL.md; which rows a device may hold is
# declared once in portal/sync/scopes.py.

CONFLICT_KINDS = ("superseded", "overwritten", "refused", "deleted")
CHANGE_OPS = ("upsert", "discard")


class Device(Record, Base):
    """A desktop copy enrolled with this (central) server; it signs its calls with a token
    whose sha256 is kept here."""

    __tablename__ = "sync_devices"

    name: Mapped[str] = mapped_column(String(200), default="")
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    first_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    app_version: Mapped[str] = mapped_column(String(40), default="")
    os_name: Mapped[str] = mapped_column(String(100), default="")  # as the copy reported it
    protocol_version: Mapped[int] = mapped_column(Integer, default=1)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    pending_changes: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)

    first_user: Mapped[User] = relationship(foreign_keys=[first_user_id])
    accounts: Mapped[list[DeviceAccount]] = relationship(back_populates="device")


class DeviceAccount(Base):
    """An account that may sign in on a device; the device holds the union of their scopes."""

    __tablename__ = "sync_device_accounts"

    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_devices.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    device: Mapped[Device] = relationship(back_populates="accounts")
    user: Mapped[User] = relationship()


class EnrolmentCode(Record, Base):
    """A single-use code that enrols one device for one account; only its sha256 is kept."""

    __tablename__ = "sync_enrolment_codes"

    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sync_devices.id"), default=None)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class DeviceSignInGrant(Record, Base):
    """On the central server: a person's sign-in on an enrolled copy through the server, in
    progress. `loopback` (RFC 8252): the one-time code the server's page hands to the copy's
    local address, bound to the device and the copy's PKCE challenge. `device` (RFC 8628): the
    code the copy polls with, and the short code the person types on another device. Only
    sha256 digests of the codes are kept; a code is taken once by a conditional UPDATE."""

    __tablename__ = "sync_sign_in_grants"

    kind: Mapped[str] = mapped_column(String(10))  # loopback | device
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_devices.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    code_challenge: Mapped[str] = mapped_column(String(128), default="")
    redirect_uri: Mapped[str] = mapped_column(String(200), default="")
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # approved|denied|used
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=5)
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class OfflinePin(Base):
    """On a desktop copy: the offline PIN of a person who signs in through the campus server's
    single sign-on (no password reaches the copy). Only a slow verifier is kept, never synced;
    `online_at` is their last sign-in through the server, from which offline_sign_in_days run."""

    __tablename__ = "offline_pins"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    pin_hash: Mapped[str] = mapped_column(String(255), default="")
    online_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChangeLogEntry(Base):
    """The server's change log: one entry each time a synchronised row changed. `seq` is given
    out in commit order (writers take one lock before they take a number), so a cursor never
    skips a transaction that committed late. An entry with a device_id is for that device only
    (a correction after a refused change)."""

    __tablename__ = "sync_changes"
    __table_args__ = (
        CheckConstraint(one_of("op", CHANGE_OPS), name="op"),
        Index("ix_sync_changes_table_row", "table_name", "row_id"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    op: Mapped[str] = mapped_column(String(10), default="upsert")
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None, index=True)


class FieldVersion(Base):
    """When (change-log seq and hybrid logical clock) a field of a row last changed on the
    server: what decides a same-field conflict."""

    __tablename__ = "sync_field_versions"

    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hlc: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)


class ProcessedChange(Base):
    """A pushed change already handled, keyed by (device, change id): a replay gets this answer
    and applies nothing twice."""

    __tablename__ = "sync_processed_changes"

    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_devices.id"), primary_key=True)
    change_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncConflict(Record, Base):
    """A value that lost (a concurrent edit, a refused change, an edit of a deleted record),
    kept so that admins and its author can see it and apply it if they choose."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (CheckConstraint(one_of("kind", CONFLICT_KINDS), name="kind"),)

    kind: Mapped[str] = mapped_column(String(20))
    table_name: Mapped[str] = mapped_column(String(64), index=True)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    field: Mapped[str] = mapped_column(String(64), default="")
    kept_value: Mapped[Any] = mapped_column(JSON, default=None)
    lost_value: Mapped[Any] = mapped_column(JSON, default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    change_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    resolution: Mapped[str] = mapped_column(String(20), default="")

    author: Mapped[User | None] = relationship(foreign_keys=[author_id])


class OutboxEntry(Base):
    """On a device: a local change waiting to be pushed, written in the same transaction as the
    change itself (portal/sync/capture.py)."""

    __tablename__ = "sync_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    op: Mapped[str] = mapped_column(String(10))  # insert | update
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    hlc: Mapped[str] = mapped_column(String(64))
    base_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncState(Base):
    """On a device: one row, the enrolment and where sync stands. The pull cursor is written in
    the same transaction as the rows it pulled."""

    __tablename__ = "sync_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    server_url: Mapped[str] = mapped_column(String(500))
    device_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    credential: Mapped[str] = mapped_column(String(200))
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    scope_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    # A pull that spans several pages: its upper bound, the table and row it reached, and
    # whether it is a full snapshot of the scope (after which rows outside it are removed).
    pull_upto: Mapped[int | None] = mapped_column(BigInteger, default=None)
    pull_table: Mapped[int] = mapped_column(Integer, default=0)
    pull_after: Mapped[str] = mapped_column(String(40), default="")
    pull_snapshot: Mapped[bool] = mapped_column(Boolean, default=False)
    pull_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    # A snapshot begun on a device that held nothing: written without the clean-up's bookkeeping.
    pull_fresh: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    clock_offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # The server's clock minus the boot clock (hlc.boot_clock) at the last sync, in that boot:
    # edits made in the same boot are dated by it, whatever the wall clock says meanwhile.
    boot_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    boot_offset_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_hlc: Mapped[str] = mapped_column(String(64), default="")
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_summary: Mapped[str] = mapped_column(Text, default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # The server offers single sign-on (its answer at the last sync): the log-in page offers
    # "Sign in with your campus account" through it, offline too (for a person already here).
    server_single_sign_on: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )


class SnapshotSeen(Base):
    """On a device, during a snapshot pull: the rows the server sent, so that rows outside the
    scope can be removed when the snapshot completes (survives a restart mid-snapshot)."""

    __tablename__ = "sync_snapshot_seen"

    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


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


# --- Counts kept by the database itself, for the admin dashboard -------------------------------
#
# Triggers on registrations and attendance_records keep these up to date on every write, whoever
# makes it (the web pages, the API, the CSV importer, a change applied by sync, the demo data), so
# the dashboard reads a few thousand counts instead of every registration and attendance record.
# They are derived: each database keeps its own from the rows it holds and they never travel by
# sync (they are not in portal.sync.tables). Migration 0010 creates the same triggers and fills
# the counts from the rows already there; tests/main/test_migrations.py checks they match.


class SectionGradeCount(Base):
    """How many enrolled registrations of a section hold each final grade (0 once none does)."""

    __tablename__ = "section_grade_counts"

    section_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    final_grade: Mapped[str] = mapped_column(String(2), primary_key=True)
    registrations: Mapped[int] = mapped_column(Integer, default=0)


class LabSessionAttendanceCount(Base):
    """How many attendance records of a lab session hold each status. One row per lab session,
    so two requests recording attendance in one session queue on one row (never deadlock)."""

    __tablename__ = "lab_session_attendance_counts"

    lab_session_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    present: Mapped[int] = mapped_column(Integer, default=0)
    late: Mapped[int] = mapped_column(Integer, default=0)
    absent: Mapped[int] = mapped_column(Integer, default=0)
    excused: Mapped[int] = mapped_column(Integer, default=0)


# On SQLite, an attendance record's status counted in its lab session's row, and taken out.
_COUNT_NEW_ATTENDANCE = """\
    INSERT INTO lab_session_attendance_counts (lab_session_id, present, late, absent, excused)
    VALUES (NEW.lab_session_id, NEW.status = 'present', NEW.status = 'late',
            NEW.status = 'absent', NEW.status = 'excused')
    ON CONFLICT (lab_session_id) DO UPDATE SET
        present = lab_session_attendance_counts.present + excluded.present,
        late = lab_session_attendance_counts.late + excluded.late,
        absent = lab_session_attendance_counts.absent + excluded.absent,
        excused = lab_session_attendance_counts.excused + excluded.excused;
"""
_UNCOUNT_OLD_ATTENDANCE = """\
    UPDATE lab_session_attendance_counts SET
        present = present - (OLD.status = 'present'), late = late - (OLD.status = 'late'),
        absent = absent - (OLD.status = 'absent'), excused = excused - (OLD.status = 'excused')
    WHERE lab_session_id = OLD.lab_session_id;
"""

# The triggers that keep the counts, per database. A change to them needs a migration (see
# 0010_dashboard_counts.py, which holds the same statements).
COUNT_TRIGGERS: dict[str, tuple[str, ...]] = {
    "sqlite": (
        """CREATE TRIGGER IF NOT EXISTS section_grade_counts_insert
AFTER INSERT ON registrations
WHEN NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL
BEGIN
    INSERT INTO section_grade_counts (section_id, final_grade, registrations)
    VALUES (NEW.section_id, NEW.final_grade, 1)
    ON CONFLICT (section_id, final_grade)
    DO UPDATE SET registrations = section_grade_counts.registrations + 1;
END""",
        """CREATE TRIGGER IF NOT EXISTS section_grade_counts_update
AFTER UPDATE OF section_id, status, final_grade ON registrations
WHEN (OLD.section_id IS NOT NEW.section_id OR OLD.status IS NOT NEW.status
      OR OLD.final_grade IS NOT NEW.final_grade)
  AND ((OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL)
       OR (NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL))
BEGIN
    UPDATE section_grade_counts SET registrations = registrations - 1
    WHERE section_id = OLD.section_id AND final_grade = OLD.final_grade
      AND OLD.status = 'enrolled';
    INSERT INTO section_grade_counts (section_id, final_grade, registrations)
    SELECT NEW.section_id, NEW.final_grade, 1
    WHERE NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL
    ON CONFLICT (section_id, final_grade)
    DO UPDATE SET registrations = section_grade_counts.registrations + 1;
END""",
        """CREATE TRIGGER IF NOT EXISTS section_grade_counts_delete
AFTER DELETE ON registrations
WHEN OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL
BEGIN
    UPDATE section_grade_counts SET registrations = registrations - 1
    WHERE section_id = OLD.section_id AND final_grade = OLD.final_grade;
END""",
        f"""CREATE TRIGGER IF NOT EXISTS lab_session_attendance_counts_insert
AFTER INSERT ON attendance_records
BEGIN
{_COUNT_NEW_ATTENDANCE}END""",
        f"""CREATE TRIGGER IF NOT EXISTS lab_session_attendance_counts_update
AFTER UPDATE OF lab_session_id, status ON attendance_records
WHEN OLD.lab_session_id IS NOT NEW.lab_session_id OR OLD.status IS NOT NEW.status
BEGIN
{_UNCOUNT_OLD_ATTENDANCE}{_COUNT_NEW_ATTENDANCE}END""",
        f"""CREATE TRIGGER IF NOT EXISTS lab_session_attendance_counts_delete
AFTER DELETE ON attendance_records
BEGIN
{_UNCOUNT_OLD_ATTENDANCE}END""",
    ),
    "postgresql": (
        """CREATE OR REPLACE FUNCTION count_section_grades() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE section_grade_counts SET registrations = registrations - 1
        WHERE section_id = OLD.section_id AND final_grade = OLD.final_grade
          AND OLD.status = 'enrolled';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'enrolled'
       AND NEW.final_grade IS NOT NULL THEN
        INSERT INTO section_grade_counts (section_id, final_grade, registrations)
        VALUES (NEW.section_id, NEW.final_grade, 1)
        ON CONFLICT (section_id, final_grade)
        DO UPDATE SET registrations = section_grade_counts.registrations + 1;
    END IF;
    RETURN NULL;
END
$$""",
        "DROP TRIGGER IF EXISTS section_grade_counts_insert ON registrations",
        """CREATE TRIGGER section_grade_counts_insert
AFTER INSERT ON registrations FOR EACH ROW
WHEN (NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL)
EXECUTE FUNCTION count_section_grades()""",
        "DROP TRIGGER IF EXISTS section_grade_counts_update ON registrations",
        """CREATE TRIGGER section_grade_counts_update
AFTER UPDATE OF section_id, status, final_grade ON registrations FOR EACH ROW
WHEN ((OLD.section_id, OLD.status, OLD.final_grade)
      IS DISTINCT FROM (NEW.section_id, NEW.status, NEW.final_grade)
  AND ((OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL)
       OR (NEW.status = 'enrolled' AND NEW.final_grade IS NOT NULL)))
EXECUTE FUNCTION count_section_grades()""",
        "DROP TRIGGER IF EXISTS section_grade_counts_delete ON registrations",
        """CREATE TRIGGER section_grade_counts_delete
AFTER DELETE ON registrations FOR EACH ROW
WHEN (OLD.status = 'enrolled' AND OLD.final_grade IS NOT NULL)
EXECUTE FUNCTION count_section_grades()""",
        """CREATE OR REPLACE FUNCTION count_lab_session_attendance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE lab_session_attendance_counts SET
            present = present - (OLD.status = 'present')::int,
            late = late - (OLD.status = 'late')::int,
            absent = absent - (OLD.status = 'absent')::int,
            excused = excused - (OLD.status = 'excused')::int
        WHERE lab_session_id = OLD.lab_session_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO lab_session_attendance_counts
            (lab_session_id, present, late, absent, excused)
        VALUES (NEW.lab_session_id, (NEW.status = 'present')::int, (NEW.status = 'late')::int,
                (NEW.status = 'absent')::int, (NEW.status = 'excused')::int)
        ON CONFLICT (lab_session_id) DO UPDATE SET
            present = lab_session_attendance_counts.present + excluded.present,
            late = lab_session_attendance_counts.late + excluded.late,
            absent = lab_session_attendance_counts.absent + excluded.absent,
            excused = lab_session_attendance_counts.excused + excluded.excused;
    END IF;
    RETURN NULL;
END
$$""",
        "DROP TRIGGER IF EXISTS lab_session_attendance_counts_insert ON attendance_records",
        """CREATE TRIGGER lab_session_attendance_counts_insert
AFTER INSERT ON attendance_records FOR EACH ROW
EXECUTE FUNCTION count_lab_session_attendance()""",
        "DROP TRIGGER IF EXISTS lab_session_attendance_counts_update ON attendance_records",
        """CREATE TRIGGER lab_session_attendance_counts_update
AFTER UPDATE OF lab_session_id, status ON attendance_records FOR EACH ROW
WHEN ((OLD.lab_session_id, OLD.status) IS DISTINCT FROM (NEW.lab_session_id, NEW.status))
EXECUTE FUNCTION count_lab_session_attendance()""",
        "DROP TRIGGER IF EXISTS lab_session_attendance_counts_delete ON attendance_records",
        """CREATE TRIGGER lab_session_attendance_counts_delete
AFTER DELETE ON attendance_records FOR EACH ROW
EXECUTE FUNCTION count_lab_session_attendance()""",
    ),
}


@event.listens_for(Base.metadata, "after_create")
def _create_count_triggers(_metadata: MetaData, connection: Any, **_kw: Any) -> None:
    """Tables made by create_all (the tests) get the triggers the migration makes."""
    for statement in COUNT_TRIGGERS.get(connection.dialect.name, ()):
        connection.exec_driver_sql(statement)
