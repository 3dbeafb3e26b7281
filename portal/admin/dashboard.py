"""The admin dashboard's figures, each aggregated by the database in one query.

The number of queries is fixed: it does not grow with terms, courses, sections or students.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from portal.attendance.services import Rate
from portal.catalogue.services import term_in_force
from portal.grading.scale import GRADE_POINTS
from portal.models import (
    ATTENDANCE_STATUSES,
    Course,
    LabSession,
    LabSessionAttendanceCount,
    Section,
    SectionGradeCount,
    Term,
    User,
    utcnow,
)

FILL_BUCKETS = (_l("Empty"), "1–24%", "25–49%", "50–74%", "75–99%", _l("Full"))
TERMS_IN_ENROLMENT_CHART = 4
SECTION_TABLE_LIMIT = 10


@dataclass
class Chart:
    """What dashboard.js draws, and what the table next to it lists for screen readers."""

    labels: list[str]
    series: list[dict[str, Any]]  # [{"label": ..., "data": [...]}]
    kind: str = "bar"
    percent: bool = False

    def as_config(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "labels": self.labels,
            "series": self.series,
            "percent": self.percent,
        }

    @property
    def empty(self) -> bool:
        return not any(any(value for value in s["data"]) for s in self.series)


@dataclass
class SectionRow:
    id: Any
    label: str
    title: str
    term: str
    enrolled: int
    capacity: int
    waitlisted: int
    instructor: str

    @property
    def fill_percent(self) -> int:
        return round(100 * self.enrolled / self.capacity) if self.capacity else 0


@dataclass
class SectionTable:
    rows: list[SectionRow]
    total: int


@dataclass
class Dashboard:
    term: Term | None
    terms: list[Term]
    courses: list[tuple[str, str]]  # (code, title) of courses with grades in the term
    course_code: str
    under_percent: int
    enrolment: Chart
    fill: Chart
    grades: Chart
    attendance: Chart
    attendance_counts: list[dict[str, Any]] = field(default_factory=list)
    full_sections: SectionTable = field(default_factory=lambda: SectionTable([], 0))
    under_filled: SectionTable = field(default_factory=lambda: SectionTable([], 0))


def _active_terms(db: Session) -> list[Term]:
    return list(
        db.scalars(select(Term).where(Term.deleted_at.is_(None)).order_by(Term.starts_on.desc()))
    )


def enrolment_by_department(db: Session, terms: list[Term]) -> Chart:
    """Enrolled students per department (x axis), one series per term (oldest first).

    Summed from the sections' enrolled_count, the counter the registration rules keep with
    conditional UPDATEs, so the query reads sections only, not every registration.
    """
    shown = list(reversed(terms[:TERMS_IN_ENROLMENT_CHART]))
    rows = db.execute(
        select(Course.department, Section.term_id, func.sum(Section.enrolled_count))
        .join(Course, Section.course_id == Course.id)
        .where(Section.deleted_at.is_(None), Section.term_id.in_([t.id for t in shown]))
        .group_by(Course.department, Section.term_id)
    ).all()
    counts = {(str(department), term_id): int(total or 0) for department, term_id, total in rows}
    departments = sorted({department for department, _ in counts})
    series = [
        {"label": term.name, "data": [counts.get((d, term.id), 0) for d in departments]}
        for term in shown
    ]
    return Chart(labels=departments, series=series)


def _section_filter(term: Term | None) -> list[Any]:
    conditions: list[Any] = [Section.deleted_at.is_(None)]
    if term is not None:
        conditions.append(Section.term_id == term.id)
    return conditions


def fill_rate(db: Session, term: Term | None) -> Chart:
    """How many sections fall in each fill band (enrolled / capacity)."""
    ratio = Section.enrolled_count * 100 / func.nullif(Section.capacity, 0)
    bucket = case(
        (Section.enrolled_count >= Section.capacity, 5),
        (Section.enrolled_count == 0, 0),
        (ratio < 25, 1),
        (ratio < 50, 2),
        (ratio < 75, 3),
        else_=4,
    )
    rows = db.execute(
        select(bucket, func.count()).where(*_section_filter(term)).group_by(bucket)
    ).all()
    counts = dict.fromkeys(range(len(FILL_BUCKETS)), 0)
    for index, count in rows:
        counts[int(index)] = count
    return Chart(
        labels=[str(bucket) for bucket in FILL_BUCKETS],
        series=[{"label": _("Sections"), "data": [counts[i] for i in range(len(FILL_BUCKETS))]}],
    )


def final_grades(
    db: Session, term: Term | None, course_code: str
) -> tuple[Chart, list[tuple[str, str]]]:
    """Final letter grades of enrolled students (for one course or all), and the courses that
    have any.

    Read from section_grade_counts, which triggers keep as final grades are written (one row
    per section and grade): a few thousand counts over all terms instead of every registration.
    """
    graded = SectionGradeCount.registrations > 0
    counted = select(SectionGradeCount.final_grade, func.sum(SectionGradeCount.registrations))
    counted = counted.where(graded)
    if term is not None or course_code:
        sections = select(Section.id)
        if term is not None:
            sections = sections.where(Section.term_id == term.id)
        if course_code:
            sections = sections.join(Course, Section.course_id == Course.id).where(
                Course.code == course_code
            )
        counted = counted.where(SectionGradeCount.section_id.in_(sections))
    counts = {
        str(grade): int(count)
        for grade, count in db.execute(counted.group_by(SectionGradeCount.final_grade))
    }
    graded_sections = select(Section.course_id).join(
        SectionGradeCount, SectionGradeCount.section_id == Section.id
    )
    graded_sections = graded_sections.where(graded)
    if term is not None:
        graded_sections = graded_sections.where(Section.term_id == term.id)
    courses = sorted(
        (str(code), str(title))
        for code, title in db.execute(
            select(Course.code, Course.title).where(Course.id.in_(graded_sections))
        )
    )
    letters = list(GRADE_POINTS)
    others = sorted(set(counts) - set(letters))  # e.g. W or P from older systems
    labels = letters + others
    chart = Chart(
        labels=labels,
        series=[
            {"label": course_code or _("All courses"), "data": [counts.get(g, 0) for g in labels]}
        ],
    )
    return chart, courses


def attendance_by_department(db: Session, term: Term | None) -> tuple[Chart, list[dict[str, Any]]]:
    """Attendance rate per department, by the attendance rule (`attendance.services.Rate`).

    Read from lab_session_attendance_counts, which triggers keep as attendance is recorded
    (one row per lab session), joined to the lab sessions, sections and courses.
    """
    counts = LabSessionAttendanceCount
    columns = [func.sum(getattr(counts, status)) for status in ATTENDANCE_STATUSES]
    query = (
        select(Course.department, *columns)
        .select_from(counts)
        .join(LabSession, counts.lab_session_id == LabSession.id)
        .join(Section, LabSession.section_id == Section.id)
        .join(Course, Section.course_id == Course.id)
        .where(LabSession.deleted_at.is_(None), *_section_filter(term))
        .group_by(Course.department)
        .order_by(Course.department)
    )
    by_department: dict[str, dict[str, int]] = {}
    for department, *records in db.execute(query):
        if not any(records):
            continue  # its records were all deleted: it has none, as before they were counted
        by_department[department] = {
            status: int(n) for status, n in zip(ATTENDANCE_STATUSES, records, strict=True)
        }
    rows: list[dict[str, Any]] = []
    rates: list[float | None] = []
    for department, statuses in by_department.items():
        rate = Rate(**statuses)
        rates.append(None if rate.rate is None else round(rate.rate, 1))
        rows.append(
            {
                "department": department,
                "records": rate.recorded,
                "attended": rate.attended,
                "absent": rate.absent,
                "excused": rate.excused,
                "rate": rates[-1],
            }
        )
    chart = Chart(
        labels=list(by_department),
        series=[{"label": _("Attendance rate (%)"), "data": [rate or 0 for rate in rates]}],
        percent=True,
    )
    return chart, rows


def _section_table(db: Session, term: Term | None, condition: Any, order: Any) -> SectionTable:
    """At most SECTION_TABLE_LIMIT rows plus the total, with a window count: one query."""
    query = (
        select(
            Section.id,
            Course.code,
            Section.number,
            Course.title,
            Term.code,
            Section.enrolled_count,
            Section.capacity,
            Section.waitlist_count,
            User.full_name,
            func.count().over().label("total"),
        )
        .join(Course, Section.course_id == Course.id)
        .join(Term, Section.term_id == Term.id)
        .outerjoin(User, Section.instructor_id == User.id)
        .where(condition, *_section_filter(term))
        .order_by(*order)
        .limit(SECTION_TABLE_LIMIT)
    )
    rows, total = [], 0
    for (
        sid,
        code,
        number,
        title,
        term_code,
        enrolled,
        capacity,
        waitlisted,
        name,
        count,
    ) in db.execute(query):
        total = count
        rows.append(
            SectionRow(
                id=sid,
                label=f"{code}-{number}",
                title=title,
                term=term_code,
                enrolled=enrolled,
                capacity=capacity,
                waitlisted=waitlisted,
                instructor=name or "",
            )
        )
    return SectionTable(rows=rows, total=total)


def full_sections(db: Session, term: Term | None) -> SectionTable:
    return _section_table(
        db,
        term,
        and_(Section.capacity > 0, Section.enrolled_count >= Section.capacity),
        (Section.waitlist_count.desc(), Course.code, Section.number),
    )


def under_filled_sections(db: Session, term: Term | None, percent: int) -> SectionTable:
    return _section_table(
        db,
        term,
        and_(Section.capacity > 0, Section.enrolled_count * 100 < Section.capacity * percent),
        (
            (Section.enrolled_count * 1.0 / Section.capacity).asc(),
            Course.code,
            Section.number,
        ),
    )


def build(
    db: Session,
    *,
    term_code: str = "",
    course_code: str = "",
    under_percent: int = 25,
    today: date | None = None,
) -> Dashboard:
    """Everything the dashboard shows, in a fixed number of queries (eight). Without a term
    code it shows the term in force on `today` (default: the current date in UTC), as Home and
    the catalogue do."""
    terms = _active_terms(db)
    term = None
    if term_code != "all":
        term = next((t for t in terms if t.code == term_code), None)
        if term is None and not term_code:
            term = term_in_force(terms, today or utcnow().date())
    under_percent = min(max(under_percent, 1), 100)
    course_code = course_code.strip().upper()
    attendance, attendance_counts = attendance_by_department(db, term)
    grades, graded = final_grades(db, term, course_code)
    return Dashboard(
        term=term,
        terms=terms,
        courses=graded,
        course_code=course_code,
        under_percent=under_percent,
        enrolment=enrolment_by_department(db, terms),
        fill=fill_rate(db, term),
        grades=grades,
        attendance=attendance,
        attendance_counts=attendance_counts,
        full_sections=full_sections(db, term),
        under_filled=under_filled_sections(db, term, under_percent),
    )
