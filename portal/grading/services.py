"""Gradebook rules: who may grade what, assessments and weights, marks, finalising grades, the
grade scale, and what students see (their marks, grades, GPA and transcript).

Every page, the JSON API and sync call these functions. A mark and a finalisation never race:
finalising takes the section's row lock (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every
write transaction begins with BEGIN IMMEDIATE), a mark a shared lock on the same row (FOR KEY
SHARE) and then the lock of its student's registration, and each reads whether the grades are
final once it holds them. So marks of different students in one section do not wait for each
other, and neither can slip in while the section is being finalised.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from portal.audit.services import record, tombstone_and_record
from portal.auth import access
from portal.catalogue.services import lock_section, share_section
from portal.errors import FieldErrors, Forbidden, NotFound, PortalError, ValidationError
from portal.grading.calculation import (
    WeightedItem,
    course_percentage,
    marked_share,
    percentage_so_far,
    total_weight,
    weights_problem,
)
from portal.grading.scale import (
    GRADE_POINTS,
    STANDARD_SCALE,
    Thresholds,
    gpa,
    letter_for,
    validate_scale,
)
from portal.models import (
    ASSESSMENT_KIND_LABELS,
    ASSESSMENT_KINDS,
    Assessment,
    Course,
    GradeFinalisation,
    GradeScale,
    Mark,
    Registration,
    Section,
    Term,
    User,
)
from portal.persistence import flush_unique

KIND_LABELS = ASSESSMENT_KIND_LABELS
MAX_POINTS = 10_000  # an assessment's maximum points; more is a typing slip
MAX_NAME_LENGTH = 200  # an assessment's name (the column's length)


class GradesLocked(PortalError):
    """The section's grades are final: only an administrator, with a reason, may change them."""

    status_code = 409


# --- Who may do what ------------------------------------------------------------------------------


# The relations themselves (section staff, the kinds each role sees) are in portal/auth/access.py.


def ensure_can_grade(user: User, section: Section) -> tuple[str, ...]:
    """The assessment kinds `user` may see and mark in `section`; none: refused."""
    kinds = access.gradable_kinds(user, section)
    if not kinds:
        raise Forbidden(_("You are not assigned to %(label)s.", label=section.label))
    return kinds


def ensure_can_manage(user: User, section: Section) -> None:
    if not access.may_manage(user, section):
        raise Forbidden(
            _(
                "Only the instructor of %(label)s or an administrator can do that.",
                label=section.label,
            )
        )


# --- Loading --------------------------------------------------------------------------------------


def get_assessment(
    db: Session, assessment_id: uuid.UUID, *, include_removed: bool = False
) -> Assessment:
    """The assessment of an active section; raises NotFound. A removed one only with
    `include_removed` (to restore it)."""
    query = select(Assessment).where(Assessment.id == assessment_id)
    if not include_removed:
        query = query.where(Assessment.deleted_at.is_(None))
    assessment = db.scalar(
        query.options(selectinload(Assessment.section).selectinload(Section.course))
    )
    if assessment is None or assessment.section.deleted_at is not None:
        raise NotFound(_("There is no such assessment."))
    return assessment


def section_assessments(
    db: Session, section_id: uuid.UUID, kinds: tuple[str, ...] = ASSESSMENT_KINDS
) -> list[Assessment]:
    return list(
        db.scalars(
            select(Assessment)
            .where(
                Assessment.section_id == section_id,
                Assessment.deleted_at.is_(None),
                Assessment.kind.in_(kinds),
            )
            .order_by(Assessment.position, Assessment.due_at, Assessment.name)
        )
    )


def finalisation_of(db: Session, section_id: uuid.UUID) -> GradeFinalisation | None:
    return db.scalar(select(GradeFinalisation).where(GradeFinalisation.section_id == section_id))


def _items(assessments: list[Assessment]) -> list[WeightedItem]:
    return [WeightedItem(a.id, a.weight, a.max_points) for a in assessments]


# --- Grade scale ----------------------------------------------------------------------------------


def active_scale(db: Session) -> Thresholds:
    """The default scale stored by an administrator, or the standard scale."""
    stored = db.scalar(
        select(GradeScale)
        .where(GradeScale.is_default.is_(True), GradeScale.deleted_at.is_(None))
        .order_by(GradeScale.updated_at.desc())
        .limit(1)
    )
    if stored is None:
        return STANDARD_SCALE
    return tuple((str(letter), float(minimum)) for letter, minimum in stored.thresholds)


def save_default_scale(
    db: Session,
    actor: User,
    thresholds: Sequence[tuple[str, float | str]],
    *,
    name: str = "Default",
) -> GradeScale:
    """Replace the default grade scale (used by every later finalisation). Every rule the
    scale breaks is refused at once (`FieldErrors`, keyed by letter or by rule)."""
    if actor.role != "admin":
        raise Forbidden(_("Only an administrator can change the grade scale."))
    cleaned = validate_scale(thresholds)
    before = active_scale(db)
    scale = db.scalar(select(GradeScale).where(GradeScale.name == name))
    if scale is None:
        scale = GradeScale(name=name, thresholds=[], is_default=True)
        db.add(scale)
    for other in db.scalars(select(GradeScale).where(GradeScale.is_default.is_(True))):
        other.is_default = False
    scale.thresholds = [[letter, minimum] for letter, minimum in cleaned]
    scale.is_default = True
    scale.deleted_at = None
    db.flush()
    record(
        db,
        actor,
        "grades.scale_changed",
        entity_type="grade_scale",
        entity_id=scale.id,
        summary=f"Changed the default grade scale ({name})",
        before={"thresholds": [list(t) for t in before]},
        after={"thresholds": scale.thresholds},
    )
    return scale


# --- Assessments ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentInput:
    name: str
    kind: str
    weight: float
    max_points: float
    due_at: datetime | None = None


def assessment_problems(data: AssessmentInput) -> dict[str, str]:
    """Every rule an assessment's own values break, by field, each said once: a form shows
    them all at once. (The rules that need the section, a free name and weights that fit, are
    checked by `create_assessment` and `update_assessment`.)"""
    problems: dict[str, str] = {}
    name = data.name.strip()
    if not name:
        problems["name"] = _("An assessment needs a name.")
    elif len(name) > MAX_NAME_LENGTH:
        problems["name"] = _(
            "The name can be at most %(max_name_length)s characters; this one has %(name)s.",
            max_name_length=MAX_NAME_LENGTH,
            name=format(len(name), ","),
        )
    if data.kind not in ASSESSMENT_KINDS:
        problems["kind"] = _(
            "The kind must be one of: %(kinds)s.", kinds=", ".join(ASSESSMENT_KINDS)
        )
    if not (math.isfinite(data.weight) and 0 <= data.weight <= 100):
        problems["weight"] = _("The weight must be between 0 and 100 percent.")
    if not (math.isfinite(data.max_points) and 0 < data.max_points <= MAX_POINTS):
        problems["max_points"] = _(
            "The maximum points must be more than 0 and at most %(max_points)s.",
            max_points=format(MAX_POINTS, ","),
        )
    return problems


def _section_problems(
    others: list[Assessment], data: AssessmentInput, section: Section, *, verb: str
) -> dict[str, str]:
    """The rules that need the section's other assessments: a free name, weights that fit."""
    problems = assessment_problems(data)
    name = data.name.strip()
    if "name" not in problems and (taken := _name_problem(others, name, section)):
        problems["name"] = taken
    if "weight" not in problems and (
        weights := _weights_problem(others, name, data.weight, verb=verb)
    ):
        problems["weight"] = weights
    return problems


def _name_problem(others: list[Assessment], name: str, section: Section) -> str | None:
    wanted = name.strip().casefold()
    if any(a.name.strip().casefold() == wanted for a in others):
        return _(
            "%(section)s already has an assessment named %(name)s.",
            section=section.label,
            name=repr(name.strip()),
        )
    return None


# Too much weight, by what was being done (whole sentences for translators).
WEIGHTS_OVER = {
    "Adding": _l(
        "Adding %(name)s (%(weight)s%%) would bring the weights to %(total)s%%; they must add "
        "up to 100%%. At most %(left)s%% is left."
    ),
    "Changing": _l(
        "Changing %(name)s (%(weight)s%%) would bring the weights to %(total)s%%; they must add "
        "up to 100%%. At most %(left)s%% is left."
    ),
    "Restoring": _l(
        "Restoring %(name)s (%(weight)s%%) would bring the weights to %(total)s%%; they must "
        "add up to 100%%. At most %(left)s%% is left."
    ),
}


def _weights_problem(
    others: list[Assessment], name: str, weight: float, *, verb: str = "Adding"
) -> str | None:
    total = total_weight(_items(others)) + weight
    if total > 100 + 0.005:
        return str(WEIGHTS_OVER[verb]) % {
            "name": repr(name),
            "weight": f"{weight:g}",
            "total": f"{total:g}",
            "left": f"{max(100 - (total - weight), 0):g}",
        }
    return None


def ensure_not_finalised(db: Session, section: Section) -> None:
    if finalisation_of(db, section.id) is not None:
        raise GradesLocked(
            _(
                "Grades for %(label)s are final: assessments can no longer be changed.",
                label=section.label,
            )
        )


def create_assessment(
    db: Session,
    actor: User,
    section: Section,
    data: AssessmentInput,
    *,
    row_id: uuid.UUID | None = None,
) -> Assessment:
    """Add an assessment; `row_id` keeps the id a device gave it offline."""
    ensure_can_manage(actor, section)
    lock_section(db, section.id)
    ensure_not_finalised(db, section)
    current = section_assessments(db, section.id)
    if problems := _section_problems(current, data, section, verb="Adding"):
        raise FieldErrors(problems)
    assessment = Assessment(
        id=row_id or uuid.uuid4(),
        section_id=section.id,
        name=data.name.strip(),
        kind=data.kind,
        weight=data.weight,
        max_points=data.max_points,
        due_at=data.due_at,
        position=max((a.position for a in current), default=0) + 1,
    )
    db.add(assessment)
    db.flush()
    return assessment


def update_assessment(
    db: Session, actor: User, assessment: Assessment, data: AssessmentInput
) -> Assessment:
    section = assessment.section
    ensure_can_manage(actor, section)
    lock_section(db, section.id)
    ensure_not_finalised(db, section)
    others = [a for a in section_assessments(db, section.id) if a.id != assessment.id]
    problems = _section_problems(others, data, section, verb="Changing")
    highest = db.scalar(select(func.max(Mark.points)).where(Mark.assessment_id == assessment.id))
    if highest is not None and data.max_points < highest and "max_points" not in problems:
        problems["max_points"] = _(
            "A student already has %(highest)s points for %(name)s: the maximum cannot be "
            "lower than that.",
            highest=format(highest, "g"),
            name=assessment.name,
        )
    if problems:
        raise FieldErrors(problems)
    assessment.name = data.name.strip()
    assessment.kind = data.kind
    assessment.weight = data.weight
    assessment.max_points = data.max_points
    assessment.due_at = data.due_at
    db.flush()
    return assessment


def delete_assessment(db: Session, actor: User, assessment: Assessment, *, now: datetime) -> None:
    """Soft delete: the marks stay in the database but no longer count (`restore_assessment`
    brings them back)."""
    ensure_can_manage(actor, assessment.section)
    lock_section(db, assessment.section_id)
    ensure_not_finalised(db, assessment.section)
    tombstone_and_record(
        db,
        assessment,
        now,
        actor=actor,
        action="assessment.delete",
        entity_type="assessment",
        summary=f"Removed assessment {assessment.name} of {assessment.section.label}",
    )


def restore_assessment(db: Session, actor: User, assessment: Assessment) -> Assessment:
    """Undo a removal: the assessment and its marks count again, under the rules of adding it
    (not finalised, its name still free, the weights still at most 100%)."""
    section = assessment.section
    ensure_can_manage(actor, section)
    lock_section(db, section.id)
    db.refresh(assessment)  # the lock is held: what another request did is seen now
    if assessment.deleted_at is None:
        raise ValidationError(_("Nothing to undo: %(name)s is not removed.", name=assessment.name))
    ensure_not_finalised(db, section)
    current = section_assessments(db, section.id)
    if problem := _name_problem(current, assessment.name, section) or _weights_problem(
        current, assessment.name, assessment.weight, verb="Restoring"
    ):
        raise ValidationError(problem)
    tombstone_and_record(
        db,
        assessment,
        None,
        actor=actor,
        action="assessment.restore",
        entity_type="assessment",
        summary=f"Restored assessment {assessment.name} of {section.label}",
    )
    return assessment


# --- Marks ----------------------------------------------------------------------------------------


POINTS_DECIMALS = 2  # marks are kept to hundredths of a point
_POINTS_STEP = Decimal(1).scaleb(-POINTS_DECIMALS)


def parse_points(raw: str) -> Decimal | None:
    """Points typed into the gradebook: empty clears the mark; '7,5' is read as 7.5. Only
    reads the number: `check_points` (called by `set_mark`) holds the rules."""
    text = (raw or "").strip().replace(",", ".")
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValidationError(_("%(text)s is not a number.", text=repr(raw.strip()))) from None
    if not value.is_finite():
        raise ValidationError(_("%(text)s is not a number.", text=repr(raw.strip())))
    return value


def points_from_number(value: object) -> Decimal | None:
    """A JSON number (the API, a device's change) as the Decimal it was written as: 1.125 stays
    1.125 (so that the precision rule sees it), never the float's binary expansion."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(_("%(value)s is not a number of points.", value=repr(value)))
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(_("%(value)s is not a number of points.", value=repr(value)))
        return Decimal(repr(value))
    if isinstance(value, str):
        return parse_points(value)
    raise ValidationError(_("%(value)s is not a number of points.", value=repr(value)))


def stored_points(points: float | None) -> Decimal | None:
    """A stored mark as the Decimal it was entered as (the column is a float)."""
    return None if points is None else Decimal(repr(points))


def check_points(points: Decimal | int | None, assessment: Assessment) -> Decimal | None:
    """The one rule for a mark's points, whoever sends them (the gradebook, the API, sync):
    not negative, at most the assessment's maximum, and no more decimal places than are kept.
    Nothing is rounded: more precision is refused, with the rule."""
    if points is None:
        return None
    if isinstance(points, bool) or not isinstance(points, Decimal | int):
        raise TypeError(f"points must be a Decimal, an int or None, not {points!r}")
    value = Decimal(points)
    if not value.is_finite():
        raise ValidationError(_("%(points)s is not a number.", points=points))
    if value < 0:
        raise ValidationError(_("Points cannot be negative."))
    if value > Decimal(repr(assessment.max_points)):
        raise ValidationError(
            _(
                "At most %(max_points)s points for %(name)s.",
                max_points=format(assessment.max_points, "g"),
                name=assessment.name,
            )
        )
    if value != value.quantize(_POINTS_STEP):
        lower = value.quantize(_POINTS_STEP, rounding=ROUND_FLOOR)
        raise ValidationError(
            _(
                "Marks are kept to %(decimals)s decimal places: %(value)s has more. "
                "Enter %(lower)s or %(upper)s.",
                decimals=POINTS_DECIMALS,
                value=format(value.normalize(), "f"),
                lower=format(lower, "f"),
                upper=format(lower + _POINTS_STEP, "f"),
            )
        )
    return value


def _enrolment(
    db: Session, section_id: uuid.UUID, student_id: uuid.UUID, *, lock: bool = False
) -> Registration:
    """The student's enrolment in the section; with `lock`, held until the commit (a mark and
    the final grade recalculated from all of the student's marks are one change at a time)."""
    query = select(Registration).where(
        Registration.section_id == section_id,
        Registration.student_id == student_id,
        Registration.status == "enrolled",
    )
    if lock:
        query = query.with_for_update(key_share=True)
    registration = db.scalar(query)
    if registration is None:
        raise ValidationError(_("That student is not enrolled in this section."))
    return registration


def _student_percentage(db: Session, section_id: uuid.UUID, student_id: uuid.UUID) -> float | None:
    assessments = section_assessments(db, section_id)
    points = dict(
        db.execute(
            select(Mark.assessment_id, Mark.points).where(
                Mark.student_id == student_id,
                Mark.assessment_id.in_([a.id for a in assessments]),
            )
        ).all()
    )
    return course_percentage(_items(assessments), points)


def set_mark(
    db: Session,
    actor: User,
    assessment: Assessment,
    student_id: uuid.UUID,
    new_points: Decimal | int | None,
    *,
    reason: str = "",
    row_id: uuid.UUID | None = None,
) -> Mark | None:
    """Enter, change or clear (None) one mark. Returns the mark (None if none exists).
    A new mark takes `row_id` when given (the id a device made offline)."""
    section = assessment.section
    kinds = ensure_can_grade(actor, section)
    if assessment.kind not in kinds:
        raise Forbidden(
            _("You can enter marks for %(kinds)s assessments only.", kinds=" and ".join(kinds))
        )
    checked = check_points(new_points, assessment)
    points = None if checked is None else float(checked)
    share_section(db, section.id)  # finalising waits for this mark, or this mark for it
    registration = _enrolment(db, section.id, student_id, lock=True)
    finalisation = finalisation_of(db, section.id)
    mark = db.scalar(
        select(Mark).where(Mark.assessment_id == assessment.id, Mark.student_id == student_id)
    )
    old_points = mark.points if mark is not None else None
    if old_points == points:
        return mark
    if finalisation is not None:
        if actor.role != "admin":
            raise GradesLocked(
                _(
                    "Grades for %(label)s are final. Ask an administrator to change a mark.",
                    label=section.label,
                )
            )
        if not reason.strip():
            raise ValidationError(_("Give a reason for changing a mark after grades are final."))
    if mark is None:
        mark = Mark(id=row_id or uuid.uuid4(), assessment_id=assessment.id, student_id=student_id)
        db.add(mark)
    mark.points = points
    mark.entered_by_id = actor.id
    db.flush()
    if finalisation is not None:
        scale = tuple((str(letter), float(minimum)) for letter, minimum in finalisation.grade_scale)
        old_grade = registration.final_grade
        percentage = _student_percentage(db, section.id, student_id) or 0.0
        registration.final_grade = letter_for(percentage, scale)
        db.flush()
        record(
            db,
            actor,
            "grades.mark_changed_after_final",
            entity_type="mark",
            entity_id=mark.id,
            summary=(
                f"{section.label} {assessment.name}: {registration.student.full_name} "
                f"({registration.student.username}) "
                f"{_fmt(old_points)} → {_fmt(points)} points; grade {old_grade or '—'} → "
                f"{registration.final_grade}"
            ),
            before={"points": old_points, "final_grade": old_grade},
            after={"points": points, "final_grade": registration.final_grade},
            reason=reason.strip(),
        )
    return mark


def _fmt(points: float | None) -> str:
    return "—" if points is None else f"{points:g}"


# --- The gradebook --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterStudent:
    """What the grid shows of a student (plain values: no ORM objects for 300 rows)."""

    id: uuid.UUID
    full_name: str
    username: str
    student_number: str | None


@dataclass
class GradebookRow:
    registration_id: uuid.UUID
    student: RosterStudent
    final_grade: str | None
    points: dict[uuid.UUID, float | None] = field(default_factory=dict)
    percentage: float | None = None  # missing marks as zero
    so_far: float | None = None  # marked assessments only
    letter: str | None = None  # provisional: from `so_far` (unmarked work is not an F)


@dataclass
class Gradebook:
    section: Section
    assessments: list[Assessment]
    rows: list[GradebookRow]
    kinds: tuple[str, ...]
    finalisation: GradeFinalisation | None
    scale: Thresholds
    weights_problem: str | None

    @property
    def shows_totals(self) -> bool:
        """Course percentages need every assessment: lab staff see the lab columns only."""
        return set(self.kinds) == set(ASSESSMENT_KINDS)

    @property
    def is_final(self) -> bool:
        return self.finalisation is not None


def gradebook(
    db: Session,
    section: Section,
    kinds: tuple[str, ...] = ASSESSMENT_KINDS,
    *,
    student_ids: list[uuid.UUID] | None = None,
) -> Gradebook:
    """The grid for one section in a constant number of queries, whatever its size."""
    all_assessments = section_assessments(db, section.id)
    visible = [a for a in all_assessments if a.kind in kinds]
    roster = (
        select(
            Registration.id,
            Registration.final_grade,
            User.id,
            User.full_name,
            User.username,
            User.student_number,
        )
        .join(User, Registration.student_id == User.id)
        .where(Registration.section_id == section.id, Registration.status == "enrolled")
        .order_by(User.full_name, User.username)
    )
    marks = select(Mark.assessment_id, Mark.student_id, Mark.points).where(
        Mark.assessment_id.in_([a.id for a in all_assessments])
    )
    if student_ids is not None:
        roster = roster.where(Registration.student_id.in_(student_ids))
        marks = marks.where(Mark.student_id.in_(student_ids))
    enrolled = db.execute(roster).all()
    points: dict[uuid.UUID, dict[uuid.UUID, float | None]] = defaultdict(dict)
    if all_assessments:
        for assessment_id, student_id, value in db.execute(marks):
            points[student_id][assessment_id] = value
    finalisation = finalisation_of(db, section.id)
    scale = (
        tuple((str(letter), float(minimum)) for letter, minimum in finalisation.grade_scale)
        if finalisation is not None
        else active_scale(db)
    )
    items = _items(all_assessments)
    rows = []
    for registration_id, final_grade, student_id, full_name, username, number in enrolled:
        student = RosterStudent(student_id, full_name, username, number)
        student_points = points.get(student.id, {})
        so_far = percentage_so_far(items, student_points)
        rows.append(
            GradebookRow(
                registration_id=registration_id,
                student=student,
                final_grade=final_grade,
                points={a.id: student_points.get(a.id) for a in visible},
                percentage=course_percentage(items, student_points),
                so_far=so_far,
                letter=provisional_letter(so_far, scale),
            )
        )
    return Gradebook(
        section=section,
        assessments=visible,
        rows=rows,
        kinds=kinds,
        finalisation=finalisation,
        scale=scale,
        weights_problem=weights_problem(items),
    )


def provisional_letter(so_far: float | None, scale: Thresholds) -> str | None:
    """The letter of the work marked so far; none while nothing is marked. Never the letter of
    the course percentage before grades are final: unmarked work would count as 0 and show an F
    early in every term."""
    return letter_for(so_far, scale) if so_far is not None else None


def gradebook_row(db: Session, section: Section, student_id: uuid.UUID) -> GradebookRow | None:
    """One student's row, for refreshing the totals after a mark is saved."""
    book = gradebook(db, section, student_ids=[student_id])
    return book.rows[0] if book.rows else None


# --- Finalising -----------------------------------------------------------------------------------


class MissingMarksChanged(ValidationError):
    """The marks missing now are not the ones the person confirmed finalising with."""

    status_code = 409


def _missing_marks(book: Gradebook) -> list[tuple[Assessment, int]]:
    """Each assessment with how many enrolled students have no mark for it (only those with)."""
    counted = [
        (a, sum(1 for row in book.rows if row.points.get(a.id) is None)) for a in book.assessments
    ]
    return [(a, count) for a, count in counted if count]


def _missing_marks_warning(missing: list[tuple[Assessment, int]], *, now: bool = False) -> str:
    total = sum(count for _, count in missing)
    detail = ", ".join(f"{a.name}: {count}" for a, count in missing)
    if now:
        return _(
            "%(total)s mark(s) missing now (%(detail)s); they count as 0.",
            total=total,
            detail=detail,
        )
    return _("%(total)s mark(s) missing (%(detail)s); they count as 0.", total=total, detail=detail)


def missing_marks_token(book: Gradebook) -> str:
    """A short fingerprint of which marks are missing ("" when none): what a person confirms
    when they finalise. It changes whenever a missing mark is filled or a mark is cleared."""
    pairs = sorted(
        f"{row.student.id}:{a.id}"
        for row in book.rows
        for a in book.assessments
        if row.points.get(a.id) is None
    )
    if not pairs:
        return ""
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FinaliseCheck:
    """What the finalise confirmation says, from the marks as they are at this moment."""

    section_label: str
    warnings: list[str]
    missing_token: str

    @property
    def question(self) -> str:
        return " ".join(
            [
                _("Finalise the grades of %(section)s?", section=self.section_label),
                *self.warnings,
                _("The marks will be locked; only an administrator can change them afterwards."),
            ]
        )


def finalise_check(db: Session, actor: User, section: Section, *, now: datetime) -> FinaliseCheck:
    """The warnings of finalising `section` now (asked for when the person confirms, not when
    their page was loaded), and the missing marks' fingerprint they confirm with."""
    ensure_can_manage(actor, section)
    book = gradebook(db, section)
    return FinaliseCheck(section.label, finalise_warnings(book, now=now), missing_marks_token(book))


def finalise_section(
    db: Session,
    actor: User,
    section: Section,
    *,
    now: datetime,
    confirmed_missing: str | None = None,
) -> GradeFinalisation:
    """Write every enrolled student's letter grade and lock the marks.

    `confirmed_missing` is the missing marks' fingerprint (`missing_marks_token`) the person
    saw when they confirmed; when marks are missing now and they are not the ones confirmed,
    nothing is finalised (MissingMarksChanged says what is missing now). None: not asked (a
    device's finalisation, replayed by sync)."""
    ensure_can_manage(actor, section)
    lock_section(db, section.id)
    existing = finalisation_of(db, section.id)
    if existing is not None:
        raise GradesLocked(
            _(
                "Grades for %(section)s were already finalised on %(when)s UTC.",
                section=section.label,
                when=format(existing.finalised_at, "%d %b %Y %H:%M"),
            )
        )
    book = gradebook(db, section)
    if book.weights_problem:
        raise ValidationError(
            _(
                "%(weights_problem)s Grades cannot be finalised until they do.",
                weights_problem=book.weights_problem,
            )
        )
    token = missing_marks_token(book)
    if confirmed_missing is not None and token and token != confirmed_missing:
        raise MissingMarksChanged(
            _(
                "Nothing was finalised: the marks changed since you confirmed. %(warning)s "
                "Check them, then finalise again.",
                warning=_missing_marks_warning(_missing_marks(book), now=True),
            )
        )
    registrations = {
        registration.id: registration
        for registration in db.scalars(
            select(Registration).where(
                Registration.id.in_([row.registration_id for row in book.rows])
            )
        )
    }
    grades: dict[str, str] = {}
    for row in book.rows:
        letter = letter_for(row.percentage or 0.0, book.scale)
        registrations[row.registration_id].final_grade = letter
        grades[row.student.student_number or row.student.username] = letter
    finalisation = GradeFinalisation(
        section_id=section.id,
        finalised_by_id=actor.id,
        finalised_at=now,
        grade_scale=[[letter, minimum] for letter, minimum in book.scale],
    )
    db.add(finalisation)
    flush_unique(
        db,
        lambda: GradesLocked(
            _("Grades for %(label)s were already finalised.", label=section.label)
        ),
    )
    record(
        db,
        actor,
        "grades.finalise",
        entity_type="section",
        entity_id=section.id,
        summary=f"Finalised grades of {section.label} ({len(grades)} students)",
        after={"grades": grades},
    )
    return finalisation


# --- What a student sees --------------------------------------------------------------------------


@dataclass
class CourseResult:
    registration: Registration
    assessments: list[tuple[Assessment, float | None]]
    percentage: float | None
    so_far: float | None
    provisional_letter: str | None  # from `so_far`
    marked_share: float | None  # how much of the course (by weight) `so_far` stands on
    weights_problem: str | None

    @property
    def section(self) -> Section:
        return self.registration.section

    @property
    def final_grade(self) -> str | None:
        return self.registration.final_grade


def finalise_warnings(book: Gradebook, *, now: datetime) -> list[str]:
    """What finalising would cut short: assessments still open for lab reports (finalising
    closes their uploads) and marks still missing (they count as 0)."""
    if book.is_final:
        return []
    warnings = []
    still_open = [
        a
        for a in book.assessments
        if a.kind in ("lab", "assignment") and a.due_at and a.due_at > now
    ]
    if still_open:
        names = ", ".join(f"{a.name} (due {a.due_at:%d %b %Y})" for a in still_open if a.due_at)
        warnings.append(
            _(
                "Still open for lab reports: %(names)s. Finalising closes their uploads.",
                names=names,
            )
        )
    if missing := _missing_marks(book):
        warnings.append(_missing_marks_warning(missing))
    return warnings


def _joined_section() -> ORMOption:
    """A student's registrations with their section, term and course, from the joins the query
    makes anyway (one statement instead of one per relationship). Built when used: building it
    at import would set up every ORM mapper before a desktop's first page needs one."""
    return contains_eager(Registration.section).options(
        contains_eager(Section.term), contains_eager(Section.course)
    )


def enrolled_registrations(db: Session, student: User) -> list[Registration]:
    """The student's enrolled registrations with their sections, terms and courses, oldest
    term first and by course code within a term: what both the results and the transcript
    list, so a page showing both reads them once."""
    return list(
        db.scalars(
            select(Registration)
            .join(Registration.section)
            .join(Section.term)
            .join(Section.course)
            .where(Registration.student_id == student.id, Registration.status == "enrolled")
            .order_by(Term.starts_on, Course.code)
            .options(_joined_section())
        )
    )


def student_results(
    db: Session, student: User, enrolled: list[Registration] | None = None
) -> list[CourseResult]:
    """The student's enrolled courses with their own marks, newest term first (by course code
    within a term). `enrolled` is `enrolled_registrations` when the caller has read it already."""
    if enrolled is None:
        enrolled = enrolled_registrations(db, student)
    # Newest term first; the sort is stable, so each term keeps the database's course order.
    registrations = sorted(enrolled, key=lambda r: r.section.term.starts_on, reverse=True)
    section_ids = [r.section_id for r in registrations]
    assessments: dict[uuid.UUID, list[Assessment]] = defaultdict(list)
    points: dict[uuid.UUID, float | None] = {}
    if section_ids:
        for assessment in db.scalars(
            select(Assessment)
            .where(Assessment.section_id.in_(section_ids), Assessment.deleted_at.is_(None))
            .order_by(Assessment.position, Assessment.due_at, Assessment.name)
        ):
            assessments[assessment.section_id].append(assessment)
        points = dict(
            db.execute(
                select(Mark.assessment_id, Mark.points)
                .join(Mark.assessment)
                .where(Mark.student_id == student.id, Assessment.section_id.in_(section_ids))
            ).all()
        )
    scale = active_scale(db)
    results = []
    for registration in registrations:
        items = _items(assessments[registration.section_id])
        so_far = percentage_so_far(items, points)
        results.append(
            CourseResult(
                registration=registration,
                assessments=[(a, points.get(a.id)) for a in assessments[registration.section_id]],
                percentage=course_percentage(items, points),
                so_far=so_far,
                provisional_letter=provisional_letter(so_far, scale),
                marked_share=marked_share(items, points),
                weights_problem=weights_problem(items) if items else None,
            )
        )
    return results


# --- Transcript and GPA ---------------------------------------------------------------------------


@dataclass
class TranscriptLine:
    registration: Registration

    @property
    def course(self) -> Course:
        return self.registration.section.course

    @property
    def grade(self) -> str | None:
        return self.registration.final_grade

    @property
    def grade_points(self) -> float | None:
        grade = self.grade
        return GRADE_POINTS.get(grade) if grade is not None else None

    @property
    def counts_for_gpa(self) -> bool:
        return self.grade_points is not None and self.course.credits > 0


@dataclass
class TranscriptTerm:
    term: Term
    lines: list[TranscriptLine]

    @property
    def gpa(self) -> float | None:
        return gpa([(line.course.credits, line.grade) for line in self.lines])

    @property
    def credits_earned(self) -> int:
        return sum(line.course.credits for line in self.lines if line.grade not in (None, "F"))


@dataclass
class Transcript:
    student: User
    terms: list[TranscriptTerm]

    @property
    def cumulative_gpa(self) -> float | None:
        return gpa([(line.course.credits, line.grade) for t in self.terms for line in t.lines])

    @property
    def credits_earned(self) -> int:
        return sum(t.credits_earned for t in self.terms)


def get_student(db: Session, student_id: uuid.UUID) -> User:
    student = db.get(User, student_id)
    if student is None or student.role != "student":
        raise NotFound(_("There is no such student."))
    return student


def transcript(
    db: Session, student: User, enrolled: list[Registration] | None = None
) -> Transcript:
    """Every enrolled course by term (oldest first), in a constant number of queries.
    `enrolled` is `enrolled_registrations` when the caller has read it already.

    Term and cumulative GPA are credit-weighted over letter grades; courses without a final
    grade (in progress) and zero-credit courses are listed but do not count."""
    registrations = enrolled if enrolled is not None else enrolled_registrations(db, student)
    terms: dict[uuid.UUID, TranscriptTerm] = {}
    for registration in registrations:
        term = registration.section.term
        terms.setdefault(term.id, TranscriptTerm(term=term, lines=[])).lines.append(
            TranscriptLine(registration)
        )
    return Transcript(student=student, terms=list(terms.values()))
