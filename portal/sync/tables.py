"""Which tables synchronise, in what order, and how their rows travel as JSON.

One declaration per table: its model, the fields a device never pushes (decided by the server:
seat counters, final grades, password hashes), how the server applies a device's change, what
travels alongside a refusal, and how a conflict on one of its rows is named; its natural keys
are read from the model's unique constraints. The order is the order a device applies them in:
parents before children.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import Table, UniqueConstraint

from portal import models
from portal.models import Base

# Never pushed by a device, on any table: the server keeps its own.
BOOKKEEPING_FIELDS = frozenset({"created_at", "updated_at"})


@dataclass(frozen=True)
class Alongside:
    """Rows a device's own rule changes together with one of a table's rows, in fields the
    server keeps: those of `table` whose `column` holds the change's `field`. When the server
    refuses the change, they are sent to the device again too, or it would keep its own."""

    table: str
    column: str
    field: str


@dataclass(frozen=True)
class RecordKind:
    """How one of a table's rows is named in a conflict ("Sam Student's Lab 2 mark in CS100-1"),
    for a row that exists and for one the server never accepted (its fields are kept in the
    conflict): which field names the person it is about, which names what it belongs to (an
    assessment, a lab session, a section), what it is called and which field holds its value."""

    noun: str  # "mark": "Sam Student's Lab 2 mark in CS100-1"
    person: str = ""  # the field naming the person the row is about ("student_id"; "id")
    parent: str = ""  # the field naming what it belongs to: assessment, lab session, section
    value: str = ""  # the field that holds what a person entered ("points")
    empty: str = "—"  # what "no value" is called ("no mark")
    own_name: str = ""  # a field naming the row itself ("name" of an assessment)
    # How the record is said: {person} "Sam Student's", {item} "Lab 2", {section} "CS100-1"
    phrase: str = _l("{person}{item} {noun}{in_section}")
    # The words for the values of `value` ("present": "Present"), when not shown as they are
    value_labels: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SyncedTable:
    model: type[Base]
    label: str | LazyString  # what people call one of its records ("Mark"), on the conflict pages
    server_fields: frozenset[str] = field(default_factory=frozenset)
    # The fields whose lost value a conflict's reviewer may put in place ("apply"), through the
    # same rule as the page they belong to.
    resolvable: frozenset[str] = field(default_factory=frozenset)
    # How the server applies a device's change to one: the name of its handler in
    # server/apply.py HANDLERS. None: changed on the campus server only, a device's change is
    # refused, naming its records as `plural` ("Accounts are changed on the campus server only.").
    apply: str | None = None
    plural: str | LazyString = ""  # the records, for a server-only table
    alongside: tuple[Alongside, ...] = ()
    record: RecordKind = field(kw_only=True)  # how a conflict on one of its rows is named

    @property
    def server_only(self) -> bool:
        return self.apply is None

    @property
    def many(self) -> str:
        return str(self.plural or self.label)

    @property
    def name(self) -> str:
        return str(self.model.__tablename__)

    @property
    def table(self) -> Table:
        return self.model.__table__  # type: ignore[return-value]

    @cached_property
    def natural_keys(self) -> tuple[tuple[str, ...], ...]:
        """Column sets unique besides the id: two devices may create the same thing (a mark
        for one student and assessment) under two ids; the server's row wins on a device."""
        keys: list[tuple[str, ...]] = []
        for constraint in self.table.constraints:
            if isinstance(constraint, UniqueConstraint):
                keys.append(tuple(column.name for column in constraint.columns))
        for column in self.table.columns:
            if column.unique and (column.name,) not in keys:
                keys.append((column.name,))
        return tuple(keys)

    def pushable(self, fields: Iterable[str]) -> dict[str, None]:
        """The fields of a local change that a device sends (in order)."""
        return {
            name: None
            for name in fields
            if name not in self.server_fields and name not in BOOKKEEPING_FIELDS
        }


def of_student(noun: str, *, of: str, value: str, empty: str, **more: Any) -> RecordKind:
    """One student's row in something (a mark of an assessment, attendance at a lab session):
    named by the student, `of` what, and holding what they entered (`value`)."""
    return RecordKind(noun, person="student_id", parent=of, value=value, empty=empty, **more)


SYNCED_TABLES: tuple[SyncedTable, ...] = (
    SyncedTable(
        models.User,
        _l("Account"),
        plural=_l("Accounts"),
        server_fields=frozenset(
            {
                "password_hash",
                "last_login_at",
                "active",
                "role",
                "account_source",
                "directory_checked_at",
            }
        ),
        # A person's own language (chosen on the profile page of a device) is the one field of
        # an account a device changes; anything else is changed on the campus server only.
        apply="account",
        record=RecordKind(_l("account"), person="id"),
    ),
    SyncedTable(
        models.Term, _l("Term"), plural=_l("Terms"), record=RecordKind(_l("term"), own_name="name")
    ),
    SyncedTable(
        models.Course,
        _l("Course"),
        plural=_l("Courses"),
        record=RecordKind(_l("course"), own_name="code"),
    ),
    SyncedTable(
        models.Prerequisite,
        _l("Prerequisite"),
        plural=_l("Prerequisites"),
        record=RecordKind(_l("prerequisite")),
    ),
    SyncedTable(
        models.Section,
        _l("Section"),
        frozenset({"enrolled_count", "waitlist_count", "waitlist_seq"}),
        plural=_l("Sections"),
        record=RecordKind(_l("section"), parent="id"),
    ),
    SyncedTable(
        models.Meeting,
        _l("Meeting time"),
        plural=_l("Meeting times"),
        record=RecordKind(_l("meeting time"), parent="section_id"),
    ),
    SyncedTable(
        models.Registration,
        _l("Registration"),
        frozenset({"waitlist_position", "enrolled_at", "final_grade", "registered_at"}),
        apply="registration",
        # the seat counters of its section
        alongside=(Alongside("sections", "id", "section_id"),),
        record=of_student(
            _l("registration"), of="section_id", value="status", empty=_l("not registered")
        ),
    ),
    SyncedTable(
        models.GradeScale,
        _l("Grade scale"),
        plural=_l("Grade scales"),
        record=RecordKind(_l("grade scale")),
    ),
    SyncedTable(
        models.Assessment,
        _l("Assessment"),
        frozenset({"position"}),
        plural=_l("Assessments"),
        record=RecordKind(_l("assessment"), parent="section_id", own_name="name"),
    ),
    SyncedTable(
        models.Mark,
        _l("Mark"),
        frozenset({"entered_by_id"}),
        frozenset({"points"}),
        apply="mark",
        record=of_student(_l("mark"), of="assessment_id", value="points", empty=_l("no mark")),
    ),
    SyncedTable(
        models.GradeFinalisation,
        _l("Final grades"),
        frozenset({"grade_scale", "finalised_by_id"}),
        apply="finalisation",
        # the final grades it writes on the section's registrations
        alongside=(Alongside("registrations", "section_id", "section_id"),),
        record=RecordKind(_l("final grades"), parent="section_id"),
    ),
    SyncedTable(
        models.LabSession,
        _l("Lab session"),
        apply="lab_session",
        record=RecordKind(_l("lab session"), parent="section_id"),
    ),
    SyncedTable(
        models.AttendanceRecord,
        _l("Attendance"),
        frozenset({"recorded_by_id"}),
        frozenset({"status"}),
        apply="attendance",
        record=of_student(
            _l("attendance"),
            of="lab_session_id",
            value="status",
            empty=_l("not taken"),
            phrase=_l("{person}{noun} at the lab of {item}{in_section}"),
            value_labels=models.ATTENDANCE_STATUS_LABELS,
        ),
    ),
    SyncedTable(models.StoredFile, _l("File"), apply="stored_file", record=RecordKind(_l("file"))),
    SyncedTable(
        models.Submission,
        _l("Lab-report submission"),
        frozenset({"late", "attempt"}),
        apply="submission",
        record=of_student(
            _l("lab report"), of="assessment_id", value="original_name", empty=_l("none handed in")
        ),
    ),
    SyncedTable(
        models.SyncConflict,
        _l("Sync conflict"),
        apply="conflict_record",
        record=RecordKind(_l("conflict record")),
    ),
)

BY_NAME: dict[str, SyncedTable] = {entry.name: entry for entry in SYNCED_TABLES}
BY_MODEL: dict[type, SyncedTable] = {entry.model: entry for entry in SYNCED_TABLES}
TABLE_INDEX: dict[str, int] = {entry.name: index for index, entry in enumerate(SYNCED_TABLES)}


def synced(instance_or_class: Any) -> SyncedTable | None:
    cls = instance_or_class if isinstance(instance_or_class, type) else type(instance_or_class)
    return BY_MODEL.get(cls)
