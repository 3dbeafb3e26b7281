"""On the central server: apply one pushed change through the same rules the web pages use.

A device pushes row changes; each is read for what the person meant (a new registration is a
request to register, a mark's points are a mark entered) and handed to the feature's service
function as the account that made it. A change the rules refuse raises a PortalError; a
same-field edit that lost to a newer one is reported as superseded. Fields the server keeps
(seat counters, waitlist positions, final grades) are never taken from a device.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.errors import Forbidden, NotFound, PortalError, ValidationError
from portal.models import (
    Assessment,
    AttendanceRecord,
    ChangeLogEntry,
    FieldVersion,
    LabSession,
    Mark,
    Registration,
    Section,
    StoredFile,
    Submission,
    User,
)
from portal.sync import hlc
from portal.sync.tables import BY_NAME, SYNCED_TABLES
from portal.sync.wire import to_json

APPLIED = "applied"
IGNORED = "ignored"  # nothing to do: only server-kept fields, or already so
SUPERSEDED = "superseded"  # a newer edit of the same field won
REFUSED = "refused"
WAITING = "waiting"  # not yet: the file it names is not whole on the server (not recorded)
FILE_NOT_THERE = _l("The file has not reached the server yet; it will be sent again.")
MADE_OFFLINE = "Made offline and synchronised from a device."  # the reason in audit entries


@dataclass
class Change:
    """One pushed change, checked for shape (not yet for meaning)."""

    change_id: uuid.UUID
    table: str
    row_id: uuid.UUID
    op: str
    fields: dict[str, Any]
    hlc: str
    base_cursor: int
    actor_id: uuid.UUID | None

    @classmethod
    def parse(cls, raw: Any) -> Change:
        """Raises ValueError naming what is wrong with a pushed change."""
        if not isinstance(raw, dict):
            raise ValueError("a change must be an object")
        try:
            change_id = uuid.UUID(str(raw["change_id"]))
            row_id = uuid.UUID(str(raw["row_id"]))
            actor = raw.get("actor_id")
            actor_id = uuid.UUID(str(actor)) if actor else None
        except (KeyError, ValueError):
            raise ValueError("change_id, row_id and actor_id must be UUIDs") from None
        table, op = raw.get("table"), raw.get("op")
        if table not in BY_NAME:
            raise ValueError(f"unknown table {table!r}")
        if op not in ("insert", "update", "delete"):
            raise ValueError(f"unknown operation {op!r}")
        fields = raw.get("fields", {})
        if not isinstance(fields, dict):
            raise ValueError("fields must be an object")
        base = raw.get("base_cursor", 0)
        if isinstance(base, bool) or not isinstance(base, int) or base < 0:
            raise ValueError("base_cursor must be a whole number")
        stamp = str(raw.get("hlc", ""))
        hlc.Timestamp.parse(stamp)
        return cls(change_id, str(table), row_id, str(op), fields, stamp, base, actor_id)


@dataclass
class Outcome:
    status: str
    detail: str = ""
    # Conflicts to record: (kind, field, kept value, lost value)
    conflicts: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    server_row_id: uuid.UUID | None = None


@dataclass
class Context:
    db: Session
    device_id: uuid.UUID
    actor: User
    change: Change
    now: datetime  # the server's clock
    upload_dir: Path
    max_upload_bytes: int

    @property
    def moment(self) -> datetime:
        """When the person made the change: the device's corrected clock, never later than
        the server's now (registration windows and late submissions are judged by it)."""
        return min(hlc.Timestamp.parse(hlc.believable(self.change.hlc, self.now)).moment, self.now)

    def value(self, name: str, current: Any = None) -> Any:
        """A pushed field as a Python value (the row's current value when not pushed)."""
        if name not in self.change.fields:
            return current
        from portal.sync.wire import from_json

        column = BY_NAME[self.change.table].table.columns[name]
        return from_json(column, self.change.fields[name])

    def uuid_value(self, name: str, current: uuid.UUID | None = None) -> uuid.UUID:
        value = self.value(name, current)
        if value is None:
            raise ValidationError(
                _("The change does not say which %(field)s.", field=name.removesuffix("_id"))
            )
        return value  # type: ignore[no-any-return]


# --- Same-field conflicts -------------------------------------------------------------------


def field_clock(db: Session, table: str, row_id: uuid.UUID, name: str) -> tuple[int, str, Any]:
    """(seq, hlc, device) of the field's last change on the server; a field never edited
    since the row was created counts from the row's first change-log entry."""
    version = db.get(FieldVersion, (table, row_id, name))
    if version is not None:
        return version.seq, version.hlc, version.device_id
    seq = db.scalar(
        select(func.min(ChangeLogEntry.seq)).where(
            ChangeLogEntry.table_name == table, ChangeLogEntry.row_id == row_id
        )
    )
    model: Any = BY_NAME[table].model
    created = db.scalar(select(model.created_at).where(model.id == row_id))
    stamp = str(hlc.Timestamp(hlc.millis_of(created), 0, "server")) if created else ""
    return seq or 0, stamp, None


def decide(ctx: Context, row: Any, name: str) -> str | None:
    """None when the device had seen the server's value (no conflict); else who wins a
    concurrent edit of the same field: "incoming" or "server", by hybrid logical clock."""
    seq, stamp, device = field_clock(ctx.db, ctx.change.table, row.id, name)
    if seq <= ctx.change.base_cursor or device == ctx.device_id:
        return None
    incoming = hlc.believable(ctx.change.hlc, ctx.now)
    return "incoming" if incoming > stamp else "server"


def _lww(ctx: Context, row: Any, name: str, new_value: Any, apply: Callable[[], Any]) -> Outcome:
    """Apply one ordinary field by last-writer-wins, keeping the loser in a conflict."""
    old_value = getattr(row, name) if row is not None else None
    winner = decide(ctx, row, name) if row is not None else None
    if row is not None and getattr(row, "deleted_at", None) is not None:
        return Outcome(
            REFUSED,
            _("This record was deleted on the server."),
            [("deleted", name, None, to_json(new_value))],
        )
    if winner == "server" and old_value != new_value:
        return Outcome(
            SUPERSEDED,
            _("A newer change to the same field was kept."),
            [("superseded", name, to_json(old_value), to_json(new_value))],
            server_row_id=row.id,
        )
    if row is not None and old_value == new_value:
        return Outcome(IGNORED, server_row_id=row.id)
    result = apply()
    conflicts = []
    if winner == "incoming":
        conflicts.append(("overwritten", name, to_json(new_value), to_json(old_value)))
    return Outcome(APPLIED, conflicts=conflicts, server_row_id=getattr(result, "id", None))


def _edit_of_deleted(ctx: Context, row: Any, detail: str, name: str, value: Any) -> Outcome:
    """An edit made offline against a record deleted on the server meanwhile: flagged as such
    (kind "deleted"), the edit kept in the conflict. A record the server never had (made
    offline) is kept with all the change's fields, as a refusal is: they alone say what it
    was about (whose mark, in which assessment)."""
    lost = to_json(value) if row is not None else dict(ctx.change.fields)
    return Outcome(
        REFUSED,
        _("%(detail)s The change was not made.", detail=detail),
        [("deleted", name, None, lost)],
    )


# --- Handlers per table ---------------------------------------------------------------------


def _registration(ctx: Context) -> Outcome:
    from portal.registration import services as registration

    existing = ctx.db.get(Registration, ctx.change.row_id)
    student_id = ctx.uuid_value("student_id", existing.student_id if existing else None)
    section_id = ctx.uuid_value("section_id", existing.section_id if existing else None)
    if student_id != ctx.actor.id:
        raise Forbidden(_("A registration can only be changed by its student."))
    if existing is None:
        existing = ctx.db.scalar(
            select(Registration).filter_by(student_id=student_id, section_id=section_id)
        )
    status = ctx.value("status", existing.status if existing else None)
    if status == "dropped":
        if existing is None or existing.status == "dropped":
            return Outcome(IGNORED, "Already dropped.")
        registration.drop(ctx.db, existing, now=ctx.moment, actor=ctx.actor, reason=MADE_OFFLINE)
        return Outcome(APPLIED, server_row_id=existing.id)
    if status in registration.ACTIVE_STATUSES:
        if existing is not None and existing.status in registration.ACTIVE_STATUSES:
            return Outcome(IGNORED, "Already registered.", server_row_id=existing.id)
        section = ctx.db.get(Section, section_id)
        if section is None:
            raise NotFound(_("There is no such section."))
        result = registration.register(
            ctx.db,
            ctx.actor,
            section,
            now=ctx.moment,
            row_id=ctx.change.row_id,
            actor=ctx.actor,
            reason=MADE_OFFLINE,
        )
        detail = (
            _("Enrolled.")
            if result.status == "enrolled"
            else _(
                "The section was full: waitlisted at position %(position)s.",
                position=result.waitlist_position,
            )
        )
        return Outcome(APPLIED, detail, server_row_id=result.id)
    return Outcome(IGNORED)


def _per_student_row(ctx: Context, model: Any, parent: str) -> tuple[Any, uuid.UUID, uuid.UUID]:
    """The server's row that a change to one student's mark or attendance is about: by id, else
    by its natural key (parent, student), as two devices may have created it under two ids.
    Returns it (None when new) with the parent's and the student's ids."""
    existing = ctx.db.get(model, ctx.change.row_id)
    parent_id = ctx.uuid_value(parent, getattr(existing, parent) if existing else None)
    student_id = ctx.uuid_value("student_id", existing.student_id if existing else None)
    row = existing or ctx.db.scalar(
        select(model).filter_by(**{parent: parent_id, "student_id": student_id})
    )
    return row, parent_id, student_id


def _mark(ctx: Context) -> Outcome:
    from portal.grading import services as grading

    row, assessment_id, student_id = _per_student_row(ctx, Mark, "assessment_id")
    assessment = ctx.db.get(Assessment, assessment_id)
    if assessment is None:
        raise NotFound(_("There is no such assessment."))
    if "points" not in ctx.change.fields:
        return Outcome(IGNORED)
    points = ctx.value("points")
    if assessment.deleted_at is not None:
        return _edit_of_deleted(
            ctx, row, f"The assessment {assessment.name} was deleted.", "points", points
        )

    def apply() -> Any:
        return grading.set_mark(
            ctx.db,
            ctx.actor,
            assessment,
            student_id,
            grading.points_from_number(points),
            reason="Entered offline and synchronised from a device.",
            row_id=ctx.change.row_id,
        )

    return _lww(ctx, row, "points", points, apply)


def _attendance(ctx: Context) -> Outcome:
    from portal.attendance import services as attendance

    row, session_id, student_id = _per_student_row(ctx, AttendanceRecord, "lab_session_id")
    lab_session = ctx.db.get(LabSession, session_id)
    if lab_session is None:
        raise NotFound(_("There is no such lab session."))
    status = ctx.value("status")
    if status is None:
        return Outcome(IGNORED)
    if lab_session.deleted_at is not None:
        return _edit_of_deleted(ctx, row, _("The lab session was deleted."), "status", status)
    return _lww(
        ctx,
        row,
        "status",
        status,
        lambda: attendance.record_attendance(
            ctx.db, ctx.actor, lab_session, student_id, status, row_id=ctx.change.row_id
        ),
    )


def _lab_session(ctx: Context) -> Outcome:
    from portal.attendance import services as attendance

    if ctx.change.op != "insert":
        raise ValidationError(_("Lab sessions are changed on the campus server only."))
    if ctx.db.get(LabSession, ctx.change.row_id) is not None:
        return Outcome(IGNORED, "Already there.")
    section = ctx.db.get(Section, ctx.uuid_value("section_id"))
    if section is None:
        raise NotFound(_("There is no such section."))
    data = attendance.LabSessionInput(
        held_on=ctx.value("held_on"),
        starts_at=ctx.value("starts_at"),
        ends_at=ctx.value("ends_at"),
        room=ctx.value("room") or "",
    )
    created = attendance.create_lab_session(
        ctx.db, ctx.actor, section, data, row_id=ctx.change.row_id
    )
    return Outcome(APPLIED, server_row_id=created.id)


def _stored_file(ctx: Context) -> Outcome:
    from portal.submissions import storage

    sha256 = str(ctx.value("sha256") or "")
    if not storage.blob_path(ctx.upload_dir, sha256).is_file():
        return Outcome(WAITING, str(FILE_NOT_THERE))
    found = ctx.db.scalar(select(StoredFile).where(StoredFile.sha256 == sha256))
    return Outcome(IGNORED, "Stored.", server_row_id=found.id if found else None)


def _submission(ctx: Context) -> Outcome:
    from portal.submissions import services as submissions
    from portal.submissions import storage

    if ctx.change.op != "insert":
        return Outcome(IGNORED)
    if ctx.db.get(Submission, ctx.change.row_id) is not None:
        return Outcome(IGNORED, "Already there.")
    if ctx.uuid_value("student_id") != ctx.actor.id:
        raise Forbidden(_("Only the student submits their own report."))
    assessment = ctx.db.get(Assessment, ctx.uuid_value("assessment_id"))
    if assessment is None:
        raise NotFound(_("There is no such assessment."))
    sha256 = str(ctx.value("file_sha256") or "")
    blob = storage.blob_path(ctx.upload_dir, sha256)
    if not blob.is_file():
        return Outcome(WAITING, str(FILE_NOT_THERE))
    with blob.open("rb") as stream:
        incoming = storage.receive(stream, ctx.upload_dir, ctx.max_upload_bytes)
    created = submissions.submit(
        ctx.db,
        ctx.actor,
        assessment,
        incoming,
        ctx.value("original_name"),
        upload_dir=ctx.upload_dir,
        now=ctx.moment,
        row_id=ctx.change.row_id,
    )
    return Outcome(APPLIED, server_row_id=created.id)


def _finalisation(ctx: Context) -> Outcome:
    from portal.grading import services as grading

    if ctx.change.op != "insert":
        return Outcome(IGNORED)
    section = ctx.db.get(Section, ctx.uuid_value("section_id"))
    if section is None:
        raise NotFound(_("There is no such section."))
    created = grading.finalise_section(ctx.db, ctx.actor, section, now=ctx.moment)
    return Outcome(APPLIED, server_row_id=created.id)


def _conflict_record(ctx: Context) -> Outcome:
    """A conflict its author dismissed on a device: closed on the server as if dismissed
    there (checked and audited as the author). Nothing else of a conflict record is a
    device's to change."""
    from portal.models import SyncConflict
    from portal.sync import review

    conflict = ctx.db.get(SyncConflict, ctx.change.row_id)
    if (
        ctx.change.op != "update"
        or conflict is None
        or ctx.change.fields.get("resolution") != "kept"
    ):
        raise ValidationError(
            _(
                "Conflict records are changed on the campus server only; a device can only "
                "dismiss its own."
            )
        )
    if conflict.resolved_at is not None:
        return Outcome(IGNORED, "Already resolved.", server_row_id=conflict.id)
    review.resolve_conflict(ctx.db, conflict, actor=ctx.actor, apply_lost_value=False, now=ctx.now)
    return Outcome(APPLIED, server_row_id=conflict.id)


def _account(ctx: Context) -> Outcome:
    """A person's language, chosen on a device: the one field of an account a device changes,
    and only the person's own (everything else is changed on the campus server only)."""
    from portal.profile import services as profile

    keys = {name for key in BY_NAME["users"].natural_keys for name in key}
    if ctx.change.op != "update" or set(ctx.change.fields) - keys - {"language"}:
        raise ValidationError(_("Accounts are changed on the campus server only."))
    if ctx.change.row_id != ctx.actor.id:
        raise Forbidden(_("Only the person themselves chooses the language of their account."))
    if "language" not in ctx.change.fields:
        return Outcome(IGNORED)
    language = ctx.value("language")
    return _lww(
        ctx,
        ctx.actor,
        "language",
        language,
        lambda: profile.set_language(ctx.db, ctx.actor, language),
    )


# By the name a table's declaration gives (SyncedTable.apply); checked against it on import.
HANDLERS: dict[str, Callable[[Context], Outcome]] = {
    "registration": _registration,
    "mark": _mark,
    "attendance": _attendance,
    "lab_session": _lab_session,
    "stored_file": _stored_file,
    "submission": _submission,
    "finalisation": _finalisation,
    "conflict_record": _conflict_record,
    "account": _account,
}
_DECLARED = {entry.apply for entry in SYNCED_TABLES if entry.apply is not None}
if set(HANDLERS) != _DECLARED:
    raise RuntimeError(
        "The synced tables name the handlers "
        f"{sorted(_DECLARED)} but apply.py has {sorted(HANDLERS)}."
    )

SERVER_ONLY_LABELS = {
    entry.name: entry.plural or entry.label for entry in SYNCED_TABLES if entry.server_only
}  # translated where they are said


def apply_change(ctx: Context) -> Outcome:
    """Apply one change as its author; raises PortalError when a rule refuses it."""
    name = BY_NAME[ctx.change.table].apply
    handler = HANDLERS[name] if name is not None else None
    if handler is None:
        label = SERVER_ONLY_LABELS.get(ctx.change.table, ctx.change.table)
        raise ValidationError(
            _("%(records)s are changed on the campus server only.", records=str(label))
        )
    if ctx.change.op == "delete":
        raise ValidationError(_("Records are not deleted from a device; the change was not made."))
    try:
        return handler(ctx)
    except ValueError as exc:  # a field with a value of the wrong type
        if isinstance(exc, PortalError):
            raise
        raise ValidationError(_("The change holds a bad value: %(exc)s", exc=exc)) from None
