"""Conflict review: what a kept conflict or refusal is about, as people name it ("Sam
Student's Lab 2 mark in CS100-1"), the value its author entered and the one in place, and
what can be done about it (apply, ask someone, dismiss), by whom.

Each synced table's rows are described once, with the table (`SyncedTable.record` in
tables.py): which field names the person a row is about, which names what it belongs to (an
assessment, a lab session, a section), what the row is called and which field holds its value.
The same description serves the server's pages and a device's, for a row that exists and for one
the server never accepted (its fields are kept in the conflict).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from portal.auth import access
from portal.errors import Forbidden, NotFound, ValidationError
from portal.models import (
    Assessment,
    Device,
    GradeFinalisation,
    LabSession,
    Section,
    SyncConflict,
    User,
)
from portal.sync.presentation import value_text
from portal.sync.tables import BY_NAME, SYNCED_TABLES, RecordKind

# How each synced table's rows are named (declared with the table in tables.py).
RECORDS: dict[str, RecordKind] = {entry.name: entry.record for entry in SYNCED_TABLES}

# The values that "apply" can put in place (declared with each table in tables.py).
APPLICABLE_FIELDS = frozenset((e.name, name) for e in SYNCED_TABLES for name in e.resolvable)


@dataclass
class Action:
    """Something a person can do about a conflict: a button (`name`) or advice (`text`)."""

    name: str  # "apply" | "keep" | "" (advice only)
    label: str
    text: str = ""
    needs_reason: bool = False


@dataclass
class ConflictView:
    """One conflict as a person reads it."""

    conflict: SyncConflict
    what: str  # "Sam Student's Lab 2 mark in CS100-1"
    student: str = ""  # "Sam Student (stud1)"
    item: str = ""  # "Lab 2"
    section: str = ""  # "CS100-1"
    section_id: uuid.UUID | None = None
    field_name: str = ""  # "points"
    entered: str = "—"  # the author's value
    in_place: str = "—"  # what the database holds now
    instructor: str = ""  # the section's instructor, to ask
    instructor_id: uuid.UUID | None = None
    finalised: bool = False
    person_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    resolved_by: str = ""  # who resolved it, when this database knows them
    link: str = ""  # where the person reading it can act on it (set by the page)
    actions: list[Action] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return self.conflict.resolution == "applied"


def _fields_of(conflict: SyncConflict) -> dict[str, Any]:
    """The fields the change carried (a refused change keeps them all)."""
    for value in (conflict.lost_value, conflict.kept_value):
        if isinstance(value, dict):
            return value
    return {}


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _value_text(kind: RecordKind, value: Any) -> str:
    if value is None:
        return str(kind.empty)
    if isinstance(value, str) and value in kind.value_labels:
        return str(kind.value_labels[value])
    return value_text(value)


def _author_value(conflict: SyncConflict, field_name: str) -> Any:
    """What the author entered: the lost value, or (an edit that won over an older one) the
    kept value; a whole refused change is narrowed to its value field."""
    value = conflict.kept_value if conflict.kind == "overwritten" else conflict.lost_value
    if isinstance(value, dict) and field_name:
        return value.get(field_name)
    return value


def describe(
    db: Session, conflicts: Iterable[SyncConflict], *, viewer: User | None = None
) -> list[ConflictView]:
    """Each conflict named as people name the record (student, assessment or lab session,
    section), with the author's value, the value in place now and, for `viewer`, what they can
    do. A few queries per page, whatever the number of conflicts."""
    conflicts = list(conflicts)
    if not conflicts:
        return []
    rows: dict[tuple[str, uuid.UUID], Any] = {}
    wanted: dict[str, set[uuid.UUID]] = {}
    for conflict in conflicts:
        wanted.setdefault(conflict.table_name, set()).add(conflict.row_id)
    for table, ids in wanted.items():
        if table not in BY_NAME:
            continue
        model: Any = BY_NAME[table].model
        for row in db.scalars(select(model).where(model.id.in_(ids))):
            rows[(table, row.id)] = row

    def value_of(conflict: SyncConflict, name: str) -> Any:
        if not name:
            return None
        row = rows.get((conflict.table_name, conflict.row_id))
        if row is not None:
            return getattr(row, name, None)
        return _fields_of(conflict).get(name)

    # What each record belongs to, then the sections and people they name.
    parents: dict[uuid.UUID, tuple[str, uuid.UUID]] = {}  # parent id -> (its name, section)
    parent_ids = {
        _as_uuid(value_of(c, RECORDS[c.table_name].parent))
        for c in conflicts
        if c.table_name in RECORDS
    } - {None}
    if parent_ids:
        for assessment_id, name, section_id in db.execute(
            select(Assessment.id, Assessment.name, Assessment.section_id).where(
                Assessment.id.in_(parent_ids)
            )
        ):
            parents[assessment_id] = (name, section_id)
        for lab_session in db.scalars(select(LabSession).where(LabSession.id.in_(parent_ids))):
            parents[lab_session.id] = (lab_session.label, lab_session.section_id)
    section_ids = {section_id for _name, section_id in parents.values()} | parent_ids
    sections = {
        section.id: section
        for section in db.scalars(select(Section).where(Section.id.in_(section_ids)))
    }
    finalised = set(
        db.scalars(
            select(GradeFinalisation.section_id).where(
                GradeFinalisation.section_id.in_(set(sections))
            )
        )
    )
    person_ids = {
        _as_uuid(value_of(c, RECORDS[c.table_name].person))
        for c in conflicts
        if c.table_name in RECORDS
    } | {section.instructor_id for section in sections.values()}
    person_ids |= {c.resolved_by_id for c in conflicts}
    people = {
        user.id: user for user in db.scalars(select(User).where(User.id.in_(person_ids - {None})))
    }

    views = []
    for conflict in conflicts:
        kind = RECORDS.get(conflict.table_name, RecordKind(conflict.table_name))
        view = ConflictView(conflict, what=kind.noun.capitalize())
        person = people.get(_as_uuid(value_of(conflict, kind.person)) or uuid.UUID(int=0))
        parent_id = _as_uuid(value_of(conflict, kind.parent))
        if parent_id in parents:
            view.item, view.section_id = parents[parent_id]
        elif parent_id in sections:
            view.section_id = parent_id
        section = sections.get(view.section_id) if view.section_id else None
        if section is not None:
            view.section = section.label
            view.finalised = section.id in finalised
            instructor = people.get(section.instructor_id) if section.instructor_id else None
            if instructor is not None:
                view.instructor = f"{instructor.full_name} ({instructor.username})"
                view.instructor_id = instructor.id
        if person is not None:
            view.student = f"{person.full_name} ({person.username})"
            view.person_id = person.id
        view.parent_id = parent_id
        resolver = people.get(conflict.resolved_by_id) if conflict.resolved_by_id else None
        if resolver is not None:
            view.resolved_by = resolver.full_name
        if kind.own_name and (own := value_of(conflict, kind.own_name)):
            view.item = str(own)
        view.what = _phrase(kind, person, view.item, view.section)
        view.field_name = conflict.field or kind.value
        view.entered = _value_text(kind, _author_value(conflict, view.field_name))
        view.in_place = _in_place(db, conflict, kind, rows, person, parent_id, view.field_name)
        view.actions = _actions(view, viewer) if viewer is not None else []
        views.append(view)
    return views


def _phrase(kind: RecordKind, person: User | None, item: str, section: str) -> str:
    """ "Sam Student's Lab 2 mark in CS100-1" (as the table's phrase says it)."""
    words = kind.phrase.format(
        person=_("%(name)s's ", name=person.full_name) if person is not None else "",
        item=item,
        noun=kind.noun,
        in_section=_(" in %(section)s", section=section) if section else "",
    )
    words = " ".join(words.split())
    return words[:1].upper() + words[1:]


def _in_place(
    db: Session,
    conflict: SyncConflict,
    kind: RecordKind,
    rows: dict[tuple[str, uuid.UUID], Any],
    person: User | None,
    parent_id: uuid.UUID | None,
    field_name: str,
) -> str:
    """The value this database holds now (the row by its id, else by what it is about: a mark
    entered meanwhile by someone else under another id)."""
    if not field_name:
        return value_text(conflict.kept_value)
    row = rows.get((conflict.table_name, conflict.row_id))
    if row is None and person is not None and parent_id is not None and kind.parent:
        model: Any = BY_NAME[conflict.table_name].model
        row = db.scalar(
            select(model)
            .where(
                getattr(model, kind.person) == person.id,
                getattr(model, kind.parent) == parent_id,
            )
            .limit(1)
        )
    if row is None or getattr(row, "deleted_at", None) is not None:
        return str(kind.empty)
    return _value_text(kind, getattr(row, field_name, None))


def recently_applied(db: Session, author: User, *, limit: int = 10) -> list[ConflictView]:
    """The author's values that someone put in place after all (newest first): what a device
    says once its sync brought the resolution."""
    query = (
        select(SyncConflict)
        .where(SyncConflict.author_id == author.id, SyncConflict.resolution == "applied")
        .order_by(SyncConflict.resolved_at.desc())
        .limit(limit)
    )
    return describe(db, db.scalars(query))


def open_on_marks(
    db: Session, section_id: uuid.UUID, *, author: User | None = None
) -> dict[tuple[uuid.UUID, uuid.UUID], ConflictView]:
    """Open conflicts on the marks of one section by (student, assessment), for the
    gradebook's cells; only `author`'s when given (a device holds its accounts' own)."""
    from portal.models import Mark

    marks_here = select(Mark.id).where(
        Mark.assessment_id.in_(select(Assessment.id).where(Assessment.section_id == section_id))
    )
    query = select(SyncConflict).where(
        SyncConflict.table_name == "marks",
        SyncConflict.resolved_at.is_(None),
        # A mark of this section's, or one the server never had (a refusal keeps its fields).
        or_(SyncConflict.row_id.in_(marks_here), SyncConflict.kind.in_(("refused", "deleted"))),
    )
    if author is not None:
        query = query.where(SyncConflict.author_id == author.id)
    notes: dict[tuple[uuid.UUID, uuid.UUID], ConflictView] = {}
    for view in describe(db, db.scalars(query.order_by(SyncConflict.created_at))):
        if view.section_id == section_id and view.person_id and view.parent_id:
            notes[(view.person_id, view.parent_id)] = view
    return notes


# --- Who may do what ------------------------------------------------------------------------


def instructs(user: User, view: ConflictView) -> bool:
    """Whether `user` is the instructor of the section the conflict's record belongs to."""
    return access.instructs(user, view)


def may_review(user: User, view: ConflictView) -> bool:
    """An administrator, the author, or the instructor of the record's section."""
    return user.role == "admin" or view.conflict.author_id == user.id or instructs(user, view)


def _can_apply(user: User, view: ConflictView) -> bool:
    conflict = view.conflict
    if (conflict.table_name, conflict.field or RECORDS[conflict.table_name].value) not in (
        APPLICABLE_FIELDS
    ):
        return False
    if conflict.kind == "overwritten":  # the author's value is the one in place
        return False
    if user.role == "admin":
        return True
    if view.finalised:
        return False  # only an administrator changes a final mark
    return instructs(user, view) or (
        conflict.author_id == user.id and user.role in ("instructor", "lab_staff")
    )


def _actions(view: ConflictView, viewer: User) -> list[Action]:
    conflict = view.conflict
    if conflict.resolved_at is not None or not may_review(viewer, view):
        return []
    actions = []
    if _can_apply(viewer, view):
        actions.append(
            Action(
                "apply",
                _("Apply %(value)s", value=view.entered),
                _("Grades are final: the student's final grade is worked out again.")
                if view.finalised
                else "",
                needs_reason=view.finalised,
            )
        )
    elif (
        conflict.kind != "overwritten"
        and (conflict.table_name, conflict.field or RECORDS[conflict.table_name].value)
        in APPLICABLE_FIELDS
    ):
        if view.finalised:
            who = _("an administrator")
            text = _(
                "Grades of %(section)s are final: ask %(who)s to apply %(value)s "
                "(the final grade is then worked out again), or dismiss it.",
                section=view.section,
                who=who,
                value=view.entered,
            )
        else:
            who = view.instructor or _("the section's instructor")
            text = _("Ask %(who)s to apply %(value)s, or dismiss it.", who=who, value=view.entered)
        actions.append(Action("", _("Ask %(who)s", who=who), text))
    actions.append(
        Action("keep", _("Dismiss"), _("Keep %(value)s and close this.", value=view.in_place))
    )
    return actions


# --- Resolving ------------------------------------------------------------------------------


def get_conflict(db: Session, conflict_id: uuid.UUID) -> SyncConflict:
    conflict = db.get(SyncConflict, conflict_id)
    if conflict is None:
        raise NotFound(_("There is no such conflict."))
    return conflict


def view_of(db: Session, conflict: SyncConflict, viewer: User) -> ConflictView:
    return describe(db, [conflict], viewer=viewer)[0]


def resolve_conflict(
    db: Session,
    conflict: SyncConflict,
    *,
    actor: User,
    apply_lost_value: bool,
    now: datetime,
    reason: str = "",
) -> ConflictView:
    """Close a conflict: keep the value in place (dismiss), or first put the author's value in
    place through the same rule as any other edit (a mark's points, an attendance status).
    An administrator, the author (dismiss; apply where their role allows) or the instructor of
    the record's section may; raises Forbidden otherwise."""
    from portal.audit.services import record

    if conflict.resolved_at is not None:
        raise ValidationError(_("That conflict is already resolved."))
    view = view_of(db, conflict, actor)
    if not may_review(actor, view):
        raise Forbidden(_("Only an administrator, its author or the section's instructor can."))
    if apply_lost_value:
        if not _can_apply(actor, view):
            if view.finalised:
                raise Forbidden(
                    _(
                        "Grades of %(section)s are final: only an administrator can apply it.",
                        section=view.section,
                    )
                )
            raise Forbidden(_("You cannot apply this value."))
        _apply_value(db, conflict, actor, view, reason=reason)
    conflict.resolved_at = now
    conflict.resolved_by_id = actor.id
    conflict.resolution = "applied" if apply_lost_value else "kept"
    subject = (
        _("%(field)s of %(record)s", field=view.field_name, record=view.what)
        if view.field_name
        else view.what
    )
    values = {"entered": view.entered, "in_place": view.in_place}
    outcome = (
        _("applied %(entered)s (was %(in_place)s)", **values)
        if apply_lost_value
        else _("kept %(in_place)s, dismissed %(entered)s", **values)
    )
    record(
        db,
        actor,
        "sync.conflict_resolved",
        entity_type=conflict.table_name,
        entity_id=conflict.row_id,
        summary=_(
            "Sync conflict on the %(subject)s: %(outcome)s", subject=subject, outcome=outcome
        ),
        reason=reason.strip(),
    )
    return view


def dismiss_here(db: Session, conflict: SyncConflict, *, actor: User, now: datetime) -> None:
    """On a device: its author (or an administrator) dismisses a conflict; the change goes to
    the campus server with the next sync, which closes it there (checked again) and tells
    the author's other computers."""
    if conflict.resolved_at is not None:
        raise ValidationError(_("That conflict is already resolved."))
    if conflict.author_id != actor.id and actor.role != "admin":
        raise Forbidden(_("Only its author can dismiss it here."))
    conflict.resolved_at = now
    conflict.resolved_by_id = actor.id
    conflict.resolution = "kept"


def _apply_value(
    db: Session, conflict: SyncConflict, actor: User, view: ConflictView, *, reason: str
) -> None:
    from portal.attendance.services import record_attendance
    from portal.grading.services import points_from_number, set_mark

    value = _author_value(conflict, view.field_name)
    if conflict.table_name == "marks":
        found = _whose_and_of(db, conflict, Assessment)
        if found is None:
            raise NotFound(_("That assessment no longer exists."))
        student_id, assessment = found
        if view.finalised and not reason.strip():
            raise ValidationError(
                _(
                    "Grades of %(section)s are final: give the reason for changing the mark.",
                    section=view.section,
                )
            )
        set_mark(
            db,
            actor,
            assessment,
            student_id,
            points_from_number(value),
            reason=reason.strip() or _("Sync conflict resolved."),
            row_id=conflict.row_id,
        )
        return
    if conflict.table_name == "attendance_records":
        found = _whose_and_of(db, conflict, LabSession)
        if found is None:
            raise NotFound(_("That lab session no longer exists."))
        student_id, lab_session = found
        record_attendance(db, actor, lab_session, student_id, str(value), row_id=conflict.row_id)
        return
    raise ValidationError(
        _("This value cannot be applied from here; make the change on its own page.")
    )


def _whose_and_of(
    db: Session, conflict: SyncConflict, parent_model: Any
) -> tuple[uuid.UUID, Any] | None:
    """The student a conflict's row is about and what it belongs to (its assessment or lab
    session: `parent_model`, as the table's RecordKind names them), read from the row or, for
    one the server never accepted, from the fields the conflict kept; None when either is
    unknown or what it belongs to was deleted."""
    kind = RECORDS[conflict.table_name]
    row = db.get(BY_NAME[conflict.table_name].model, conflict.row_id)
    fields = _fields_of(conflict)

    def named(field_name: str) -> uuid.UUID | None:
        return getattr(row, field_name) if row is not None else _as_uuid(fields.get(field_name))

    student_id, parent_id = named(kind.person), named(kind.parent)
    parent = db.get(parent_model, parent_id) if parent_id else None
    if student_id is None or parent is None or parent.deleted_at is not None:
        return None
    return student_id, parent


def section_conflicts(
    db: Session, instructor: User, *, state: str = "open", limit: int = 500
) -> list[ConflictView]:
    """The conflicts on records of the sections `instructor` teaches, newest first (read in
    Python: a refused record may exist only in the conflict's kept fields)."""
    taught = set(db.scalars(access.instructed_sections(instructor.id, instructor.role)))
    if not taught:
        return []
    tables = [name for name, kind in RECORDS.items() if kind.parent and name != "sections"]
    query = conflicts_query(state=state).where(SyncConflict.table_name.in_(tables)).limit(limit)
    views = describe(db, db.scalars(query), viewer=instructor)
    return [view for view in views if view.section_id in taught]


# --- Lists of conflicts ---------------------------------------------------------------------


def open_conflict_count(db: Session) -> int:
    return (
        db.scalar(select(func.count(SyncConflict.id)).where(SyncConflict.resolved_at.is_(None)))
        or 0
    )


CONFLICT_STATES = ("open", "resolved", "all")


def conflicts_query(
    *,
    author_id: uuid.UUID | None = None,
    include_resolved: bool = False,
    kind: str = "",
    table: str = "",
    state: str = "",
) -> Any:
    """Conflicts, newest first: open ones only unless `include_resolved` or `state` says
    otherwise ("open", "resolved", "all"); narrowed to one author, kind or table."""
    query = select(SyncConflict).order_by(SyncConflict.created_at.desc(), SyncConflict.id)
    if author_id is not None:
        query = query.where(SyncConflict.author_id == author_id)
    state = state or ("all" if include_resolved else "open")
    if state == "open":
        query = query.where(SyncConflict.resolved_at.is_(None))
    elif state == "resolved":
        query = query.where(SyncConflict.resolved_at.is_not(None))
    if kind:
        query = query.where(SyncConflict.kind == kind)
    if table:
        query = query.where(SyncConflict.table_name == table)
    return query


def conflict_tables(db: Session) -> list[str]:
    """The tables that have conflicts, for the page's filter."""
    return list(db.scalars(select(SyncConflict.table_name).distinct().order_by("table_name")))


def device_names(db: Session, device_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    ids = {device_id for device_id in device_ids if device_id is not None}
    if not ids:
        return {}
    rows = db.execute(select(Device.id, Device.name).where(Device.id.in_(ids)))
    return {row[0]: row[1] for row in rows}
