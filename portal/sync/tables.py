"""Which tables synchronise, in what order, and how their rows travel as JSON.

One declaration per table: its model, the fields a device never pushes (decided by the server:
seat counters, final grades, password hashes), and its natural keys, read from the model's
unique constraints. The order is the order a device applies them in: parents before children.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

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
class SyncedTable:
    model: type[Base]
    label: str  # what people call one of its records ("Mark"), on the conflict pages
    server_fields: frozenset[str] = field(default_factory=frozenset)
    # The fields whose lost value a conflict's reviewer may put in place ("apply"), through the
    # same rule as the page they belong to.
    resolvable: frozenset[str] = field(default_factory=frozenset)
    # How the server applies a device's change to one: the name of its handler in
    # server/apply.py HANDLERS. None: changed on the campus server only, a device's change is
    # refused, naming its records as `plural` ("Accounts are changed on the campus server only.").
    apply: str | None = None
    plural: str = ""  # the label with an "s" when not given
    alongside: tuple[Alongside, ...] = ()

    @property
    def server_only(self) -> bool:
        return self.apply is None

    @property
    def many(self) -> str:
        return self.plural or f"{self.label}s"

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


SYNCED_TABLES: tuple[SyncedTable, ...] = (
    SyncedTable(
        models.User,
        "Account",
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
    ),
    SyncedTable(models.Term, "Term"),
    SyncedTable(models.Course, "Course"),
    SyncedTable(models.Prerequisite, "Prerequisite"),
    SyncedTable(
        models.Section,
        "Section",
        frozenset({"enrolled_count", "waitlist_count", "waitlist_seq"}),
    ),
    SyncedTable(models.Meeting, "Meeting time"),
    SyncedTable(
        models.Registration,
        "Registration",
        frozenset({"waitlist_position", "enrolled_at", "final_grade", "registered_at"}),
        apply="registration",
        # the seat counters of its section
        alongside=(Alongside("sections", "id", "section_id"),),
    ),
    SyncedTable(models.GradeScale, "Grade scale", plural="The grade scale"),
    SyncedTable(models.Assessment, "Assessment", frozenset({"position"})),
    SyncedTable(
        models.Mark, "Mark", frozenset({"entered_by_id"}), frozenset({"points"}), apply="mark"
    ),
    SyncedTable(
        models.GradeFinalisation,
        "Final grades",
        frozenset({"grade_scale", "finalised_by_id"}),
        apply="finalisation",
        # the final grades it writes on the section's registrations
        alongside=(Alongside("registrations", "section_id", "section_id"),),
    ),
    SyncedTable(models.LabSession, "Lab session", apply="lab_session"),
    SyncedTable(
        models.AttendanceRecord,
        "Attendance",
        frozenset({"recorded_by_id"}),
        frozenset({"status"}),
        apply="attendance",
    ),
    SyncedTable(models.StoredFile, "File", apply="stored_file"),
    SyncedTable(
        models.Submission,
        "Lab-report submission",
        frozenset({"late", "attempt"}),
        apply="submission",
    ),
    SyncedTable(models.SyncConflict, "Sync conflict", apply="conflict_record"),
)

BY_NAME: dict[str, SyncedTable] = {entry.name: entry for entry in SYNCED_TABLES}
BY_MODEL: dict[type, SyncedTable] = {entry.model: entry for entry in SYNCED_TABLES}
TABLE_INDEX: dict[str, int] = {entry.name: index for index, entry in enumerate(SYNCED_TABLES)}


def synced(instance_or_class: Any) -> SyncedTable | None:
    cls = instance_or_class if isinstance(instance_or_class, type) else type(instance_or_class)
    return BY_MODEL.get(cls)
